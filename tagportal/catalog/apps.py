from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CatalogConfig(AppConfig):
    name = "tagportal.catalog"
    label = "catalog"
    verbose_name = _("Tag dictionary")

    def ready(self):
        from . import signals  # noqa: F401
