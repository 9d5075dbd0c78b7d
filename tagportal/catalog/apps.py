from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CatalogConfig(AppConfig):
    name = "tagportal.catalog"
    label = "catalog"
    verbose_name = _("Tag dictionary")

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import signals

        post_migrate.connect(
            signals.ensure_all_business_line_groups, dispatch_uid="tagportal_business_line_groups"
        )
