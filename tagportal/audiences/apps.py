from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AudiencesConfig(AppConfig):
    name = "tagportal.audiences"
    label = "audiences"
    verbose_name = _("Audiences")

    def ready(self):
        from tagportal.core import claims

        from . import services, signals  # noqa: F401  (connects the receivers)

        claims.register(services.CLAIM_KIND, services.abandon_claimed_refresh)
