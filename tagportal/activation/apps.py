from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ActivationConfig(AppConfig):
    name = "tagportal.activation"
    label = "activation"
    verbose_name = _("Activation channels")

    def ready(self):
        from . import wiring

        wiring.connect()
