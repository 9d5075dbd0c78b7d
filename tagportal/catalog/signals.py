from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import BusinessLine


@receiver(post_save, sender=BusinessLine, dispatch_uid="business_line_groups")
def business_line_groups(sender, instance, created, raw=False, **kwargs):
    """Every business line owns its operator, steward and analyst groups."""
    if created and not raw:
        from .services import ensure_business_line_groups

        ensure_business_line_groups(instance)
