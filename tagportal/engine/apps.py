from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EngineConfig(AppConfig):
    name = "tagportal.engine"
    label = "engine"
    verbose_name = _("Tag engine")

    def ready(self):
        from tagportal.catalog import hooks
        from tagportal.core import claims

        from . import services, tasks

        # The rule editor of the dictionary and the review pages tries draft rules here.
        hooks.register_rule_sample_url("engine-rule-sample")
        claims.register(tasks.CLAIM_KIND, services.abandon_claimed_run)
