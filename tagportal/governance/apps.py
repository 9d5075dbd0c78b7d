from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GovernanceConfig(AppConfig):
    name = "tagportal.governance"
    label = "governance"
    verbose_name = _("Governance")

    def ready(self):
        from . import signals, tasks  # noqa: F401 - connects the submit hook, registers the tasks
