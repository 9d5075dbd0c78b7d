from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GovernanceConfig(AppConfig):
    name = "tagportal.governance"
    label = "governance"
    verbose_name = _("Governance")

    def ready(self):
        from tagportal.catalog import hooks as catalog_hooks
        from tagportal.core import claims
        from tagportal.predictive import hooks

        from . import model_runs, services, signals, tasks  # noqa: F401 - connects the receivers, registers the tasks
        from .reports import service as reports

        claims.register(reports.CLAIM_KIND, reports.abandon_claimed_report)
        hooks.register_run_links(model_runs.run_review_links)
        # A tag's history names who proposed and who approved each published version.
        catalog_hooks.register_version_people(services.version_people)
