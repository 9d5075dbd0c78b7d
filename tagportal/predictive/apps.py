from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PredictiveConfig(AppConfig):
    name = "tagportal.predictive"
    label = "predictive"
    verbose_name = _("Algorithm models")

    def ready(self):
        from . import signals  # noqa: F401  (connects the receivers)
