from django.apps import AppConfig, apps
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _ensure_roles(sender, using="default", **kwargs):
    """Once every app has its permissions, make sure the role groups exist."""
    last = [config for config in apps.get_app_configs() if config.models_module][-1]
    if sender.label != last.label:
        return
    from .roles import ensure_roles

    ensure_roles()


class CoreConfig(AppConfig):
    name = "tagportal.core"
    label = "core"
    verbose_name = _("Accounts and roles")

    def ready(self):
        post_migrate.connect(_ensure_roles, dispatch_uid="tagportal_ensure_roles")
