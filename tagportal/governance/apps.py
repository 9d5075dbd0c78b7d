from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GovernanceConfig(AppConfig):
    name = "tagportal.governance"
    label = "governance"
    verbose_name = _("Governance")

    def ready(self):
        from tagportal.predictive import hooks

        from . import model_runs, signals, tasks  # noqa: F401 - connects the receivers, registers the tasks

        hooks.register_run_links(model_runs.run_review_links)
