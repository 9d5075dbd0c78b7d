from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GovernanceConfig(AppConfig):
    name = "tagportal.governance"
    label = "governance"
    verbose_name = _("Governance")

    def ready(self):
        from . import impact_tasks  # noqa: F401 - registers the impact preview task and its submit hook
