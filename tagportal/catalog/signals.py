from django.db.models.signals import post_save
from django.dispatch import Signal, receiver

from .models import BusinessLine

#: Sent inside :func:`~.services.apply_template`'s transaction once a pack's tags exist:
#: ``brand``, ``pack`` (the :class:`~.templates.TemplatePack`), ``tags`` (``{template tag
#: name: Tag}``, created now or before) and ``user``. Receivers that raise undo the whole
#: application.
template_applied = Signal()


@receiver(post_save, sender=BusinessLine, dispatch_uid="business_line_groups")
def business_line_groups(sender, instance, created, raw=False, **kwargs):
    """Every business line owns its operator, steward and analyst groups."""
    if created and not raw:
        from .services import ensure_business_line_groups

        ensure_business_line_groups(instance)


def ensure_all_business_line_groups(sender, **kwargs):
    """After migrations (once every app has its permissions), refresh every business
    line's groups so that new grants (e.g. reviewing) reach existing business lines."""
    from django.apps import apps

    last = [config for config in apps.get_app_configs() if config.models_module][-1]
    if sender.label != last.label:
        return
    from .services import ensure_business_line_groups

    for business_line in BusinessLine.objects.all():
        ensure_business_line_groups(business_line)
