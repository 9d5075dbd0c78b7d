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


class ComputationStateMixin(models.Model):
    """The state of a versioned background computation (PostHog's cohort): a request
    bumps ``pending_version`` and hands it to the task, which gives way when it moved
    on; ``is_calculating`` while a run is under way (a periodic job resets runs that
    hung); failures in a row and the last error until the next success."""

    pending_version = models.PositiveIntegerField(
        _("pending version"),
        default=0,
        help_text=_("Bumped each time a computation is requested; older requests give way to newer ones."),
    )
    is_calculating = models.BooleanField(_("calculating"), default=False)
    calculation_started_at = models.DateTimeField(_("calculation started"), null=True, blank=True)
    last_calculated_at = models.DateTimeField(_("last calculated"), null=True, blank=True)
    errors_calculating = models.PositiveIntegerField(
        _("failures in a row"), default=0, help_text=_("Reset by the next successful run.")
    )
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    #: The state fields, in the order pages and the API show them.
    STATE_FIELDS = (
        "pending_version",
        "is_calculating",
        "calculation_started_at",
        "last_calculated_at",
        "errors_calculating",
        "last_error_at",
        "last_error",
    )

    class Meta:
        abstract = True
