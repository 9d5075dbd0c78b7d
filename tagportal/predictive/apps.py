from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PredictiveConfig(AppConfig):
    name = "tagportal.predictive"
    label = "predictive"
    verbose_name = _("Algorithm models")

    def ready(self):
        from tagportal.catalog import hooks
        from tagportal.catalog.signals import template_applied

        from . import (
            signals,  # noqa: F401  (connects the receivers)
            templates,
        )

        hooks.register_model_check(templates.check_model)
        template_applied.connect(templates.link_template_tags, dispatch_uid="predictive_template_models")
