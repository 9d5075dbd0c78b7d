from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class JourneysConfig(AppConfig):
    name = "tagportal.journeys"
    label = "journeys"
    verbose_name = _("Journeys")

    def ready(self):
        from . import wiring

        wiring.connect()
