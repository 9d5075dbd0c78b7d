from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LineageConfig(AppConfig):
    name = "tagportal.lineage"
    label = "lineage"
    verbose_name = _("Lineage")

    def ready(self):
        from . import signals  # noqa: F401
