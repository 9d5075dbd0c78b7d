from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AudiencesConfig(AppConfig):
    name = "tagportal.audiences"
    label = "audiences"
    verbose_name = _("Audiences")

    def ready(self):
        from . import signals  # noqa: F401  (connects the receivers)
