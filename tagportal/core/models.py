"""The user model and the base every TagPortal model builds on."""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from .querysets import RestrictedQuerySet


class User(AbstractUser):
    """A person or a service account (an API client with a token)."""

    display_name = models.CharField(_("display name"), max_length=150, blank=True)
    is_service_account = models.BooleanField(
        _("service account"),
        default=False,
        help_text=_("An API client authenticating with a token, not a person."),
    )

    class Meta(AbstractUser.Meta):
        verbose_name = _("user")
        verbose_name_plural = _("users")
        permissions = [
            ("unrestricted", _("Can access every business line and brand")),
            ("view_pii", _("Can see personal data in clear")),
        ]

    def __str__(self):
        return self.display_name or self.get_full_name() or self.username


class TimeStampedModel(models.Model):
    """Creation and change times, and a full version history of every change."""

    created = models.DateTimeField(_("created"), auto_now_add=True)
    last_updated = models.DateTimeField(_("last updated"), auto_now=True)
    history = HistoricalRecords(inherit=True, cascade_delete_history=False)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        abstract = True
