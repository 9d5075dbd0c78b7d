from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProfilesConfig(AppConfig):
    name = "tagportal.profiles"
    label = "profiles"
    verbose_name = _("Profiles")

    def ready(self):
        from tagportal.rules import vocabulary

        from .schema import VOCABULARY

        # The profile data model is the vocabulary rules are validated against.
        vocabulary.register(VOCABULARY)
