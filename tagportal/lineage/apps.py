from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LineageConfig(AppConfig):
    name = "tagportal.lineage"
    label = "lineage"
    verbose_name = _("Lineage")

    def ready(self):
        from tagportal.catalog import hooks

        from . import services, signals  # noqa: F401

        # The dictionary flags tags with stale data and names their sources through these.
        hooks.register_stale_flags(services.stale_tag_ids)
        hooks.register_source_names(services.tag_source_names)
