from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EngineConfig(AppConfig):
    name = "tagportal.engine"
    label = "engine"
    verbose_name = _("Tag engine")

    def ready(self):
        from tagportal.catalog import hooks

        # The rule editor of the dictionary and the review pages tries draft rules here.
        hooks.register_rule_sample_url("engine-rule-sample")
