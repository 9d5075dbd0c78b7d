"""The user model and the base every TagPortal model builds on."""

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from .choices import ClaimStatus
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


class WorkClaim(models.Model):
    """A unit of background work being run (a tag computation, one of its OneID ranges,
    a report, an audience refresh): who runs it and when it last said it was alive.

    The task renews ``heartbeat_at`` while it runs; a claim whose heartbeat stopped (its
    worker was killed) is marked abandoned by the reaper (:mod:`tagportal.core.claims`),
    which has the app that owns the work record it and queue it again. ``key`` names the
    unit of work the same way on every delivery of its task, so a redelivered task finds
    its claim. Rows are kept a week: they are the record of abandoned work."""

    kind = models.CharField(_("kind"), max_length=40)
    key = models.CharField(_("key"), max_length=200, unique=True)
    subject = models.CharField(_("subject"), max_length=120, db_index=True)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ClaimStatus.choices, default=ClaimStatus.RUNNING
    )
    owner = models.CharField(_("owner"), max_length=200, help_text=_("Host name and process id."))
    owner_node = models.CharField(_("owner's machine"), max_length=120, blank=True, editable=False)
    task_id = models.CharField(_("task id"), max_length=64, blank=True)
    started_at = models.DateTimeField(_("started"))
    heartbeat_at = models.DateTimeField(_("last heartbeat"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = _("work claim")
        verbose_name_plural = _("work claims")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=ClaimStatus.values), name="work_claim_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="work_claim_status_beat")]

    def __str__(self):
        return f"{self.key} ({self.get_status_display()})"
