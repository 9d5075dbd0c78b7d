"""Change requests and their review: the only way a tag is published or changed."""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericRelation
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tagportal.catalog.models import Brand, BusinessLine, Tag, TagVersion
from tagportal.core.models import TimeStampedModel
from tagportal.core.permissions import Via
from tagportal.core.querysets import RestrictedQuerySet

from .choices import AuditAction, ChangeKind, ReportKind, ReportStatus, ReportTrigger, RequestState


class ChangeRequestQuerySet(RestrictedQuerySet):
    def open(self):
        return self.filter(
            state__in=[RequestState.DRAFT, RequestState.SUBMITTED, RequestState.CHANGES_REQUESTED]
        )

    def in_review(self):
        return self.filter(state=RequestState.SUBMITTED)


class ChangeRequest(TimeStampedModel):
    """One review: a single tag change, or a bulk of them approved together."""

    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    state = models.CharField(
        _("state"), max_length=20, choices=RequestState.choices, default=RequestState.DRAFT
    )
    business_line = models.ForeignKey(
        BusinessLine,
        on_delete=models.PROTECT,
        related_name="change_requests",
        verbose_name=_("business line"),
    )
    brand = models.ForeignKey(
        Brand,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="change_requests",
        verbose_name=_("brand"),
        help_text=_("Empty when the request spans several brands of the business line."),
    )
    proposer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="proposed_changes",
        verbose_name=_("proposer"),
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="reviewed_changes",
        verbose_name=_("reviewer"),
    )
    decision_reason = models.TextField(_("decision reason"), blank=True)
    confirm_dependents = models.BooleanField(
        _("dependents confirmed"),
        default=False,
        help_text=_("The proposer confirmed the change although other tags depend on what it removes."),
    )
    restructure = models.JSONField(
        _("category restructure"),
        default=dict,
        blank=True,
        help_text=_("For a restructure of the category tree: operation, source, target, new name and code."),
    )
    is_bulk = models.BooleanField(_("bulk"), default=False)
    source_file = models.CharField(_("uploaded file"), max_length=255, blank=True)
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    applied_at = models.DateTimeField(_("applied at"), null=True, blank=True)

    #: Inbox messages about this request (deleted with it).
    notifications = GenericRelation(
        "notifications.Notification",
        content_type_field="topic_type",
        object_id_field="topic_id",
        related_query_name="change_request",
    )

    objects = ChangeRequestQuerySet.as_manager()
    scope = [Via("catalog.businessline", "business_line"), Via("catalog.brand", "brand")]

    class Meta:
        ordering = ["-created"]
        verbose_name = _("change request")
        verbose_name_plural = _("change requests")
        permissions = [("review_changerequest", _("Can review (approve or reject) change requests"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=RequestState.values), name="change_request_state_valid"
            ),
            models.CheckConstraint(
                condition=Q(reviewer__isnull=True) | ~Q(reviewer=models.F("proposer")),
                name="change_request_four_eyes",
            ),
        ]
        indexes = [models.Index(fields=["state", "business_line"])]

    def __str__(self):
        return f"#{self.pk} {self.title}"

    @property
    def kind(self) -> str:
        kinds = {item.kind for item in self.items.all()}
        return kinds.pop() if len(kinds) == 1 else "bulk"


class ChangeItem(models.Model):
    """One tag change inside a request: what is proposed, against which version."""

    change_request = models.ForeignKey(
        ChangeRequest, on_delete=models.CASCADE, related_name="items", verbose_name=_("change request")
    )
    position = models.PositiveIntegerField(_("position"), default=0)
    kind = models.CharField(_("kind"), max_length=12, choices=ChangeKind.choices)
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="change_items", verbose_name=_("tag"))
    base_version = models.PositiveIntegerField(
        _("based on version"),
        null=True,
        blank=True,
        help_text=_("The published version the change was made on."),
    )
    changes = models.JSONField(_("proposed changes"), default=dict, blank=True)
    merge_target = models.ForeignKey(
        Tag,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="incoming_merges",
        verbose_name=_("merge into"),
    )
    rollback_to = models.PositiveIntegerField(_("roll back to version"), null=True, blank=True)
    diff = models.JSONField(_("diff"), default=list, blank=True)
    model_run = models.ForeignKey(
        "predictive.ModelRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("model run"),
        help_text=_("The held run of an algorithm model this change publishes."),
    )
    dependents = models.JSONField(_("dependents"), default=list, blank=True)
    produced_version = models.ForeignKey(
        TagVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("produced version"),
    )
    # The impact preview of a rule change (see :mod:`.impact`), cached per proposed
    # changes and the tag's current result.
    impact = models.JSONField(_("impact preview"), default=dict, blank=True, editable=False)
    impact_computed_at = models.DateTimeField(_("impact computed at"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["change_request_id", "position", "pk"]
        verbose_name = _("change")
        verbose_name_plural = _("changes")
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=ChangeKind.values), name="change_item_kind_valid"),
            models.CheckConstraint(
                condition=~Q(kind=ChangeKind.MERGE) | Q(merge_target__isnull=False),
                name="change_item_merge_has_target",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.tag.code}"


class Comment(models.Model):
    change_request = models.ForeignKey(
        ChangeRequest, on_delete=models.CASCADE, related_name="comments", verbose_name=_("change request")
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, verbose_name=_("author"))
    text = models.TextField(_("comment"))
    created = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["created", "pk"]
        verbose_name = _("comment")
        verbose_name_plural = _("comments")

    def __str__(self):
        return self.text[:50]


class AuditEvent(models.Model):
    """Append-only record of every governance decision, for the audit export."""

    at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+", verbose_name=_("by")
    )
    action = models.CharField(_("action"), max_length=20, choices=AuditAction.choices)
    change_request = models.ForeignKey(
        ChangeRequest, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events"
    )
    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    business_line = models.ForeignKey(BusinessLine, on_delete=models.PROTECT, related_name="+")
    brand = models.ForeignKey(Brand, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    objects = RestrictedQuerySet.as_manager()
    scope = [Via("catalog.businessline", "business_line"), Via("catalog.brand", "brand")]

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.action}"


class Report(models.Model):
    """A usage, cold-tag, merge-suggestion or activity report: its parameters, its data
    and its run. One row per kind, scope and period (``key``): running a report again
    for the same parameters rewrites that row, so a report is idempotent.

    ``data`` is ``{"meta": {...}, "rows": [...]}`` as built by
    :mod:`tagportal.governance.reports`; rows name tags by id and carry their business
    line, brand and regions so pages filter them by what the viewer may see."""

    kind = models.CharField(_("kind"), max_length=12, choices=ReportKind.choices)
    business_line = models.ForeignKey(
        BusinessLine,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reports",
        verbose_name=_("business line"),
        help_text=_("Empty: every business line."),
    )
    brand = models.ForeignKey(
        Brand,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reports",
        verbose_name=_("brand"),
    )
    region = models.ForeignKey(
        "catalog.Region",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reports",
        verbose_name=_("region"),
    )
    period_start = models.DateField(_("from"), help_text=_("First Beijing day of the period."))
    period_end = models.DateField(_("to"), help_text=_("Last Beijing day of the period, included."))
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    key = models.CharField(_("key"), max_length=64, unique=True, editable=False)
    status = models.CharField(
        _("status"), max_length=10, choices=ReportStatus.choices, default=ReportStatus.PENDING
    )
    trigger = models.CharField(_("started by"), max_length=10, choices=ReportTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    requested_at = models.DateTimeField(_("requested at"))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_s = models.FloatField(_("run time (s)"), null=True, blank=True)
    runs = models.PositiveIntegerField(_("runs"), default=0)
    row_count = models.PositiveIntegerField(_("findings"), default=0)
    data = models.JSONField(_("data"), default=dict, blank=True, editable=False)
    error = models.TextField(_("error"), blank=True)

    objects = RestrictedQuerySet.as_manager()
    # A report of one business line is seen by those who see the line (or one of its
    # brands); a report of every line by everyone with the model permission: its rows
    # are filtered by what the viewer may see (see :mod:`tagportal.governance.reports`).
    scope = [
        Via(
            "catalog.businessline",
            lambda granted: Q(business_line__isnull=True) | Q(business_line__in=granted),
        ),
        Via(
            "catalog.brand",
            lambda granted: (
                Q(business_line__isnull=True)
                | Q(brand__in=granted)
                # The lines of the granted brands as a subquery: joining a line's brands
                # would repeat a report once per brand.
                | Q(
                    brand__isnull=True,
                    business_line__in=Brand.objects.filter(pk__in=granted).values("business_line_id"),
                )
            ),
        ),
        Via("catalog.tag", lambda granted: Q(business_line__isnull=True)),
    ]

    class Meta:
        ordering = ["-period_end", "kind", "-pk"]
        verbose_name = _("report")
        verbose_name_plural = _("reports")
        permissions = [("run_report", _("Can run reports"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(period_start__lte=models.F("period_end")), name="report_period"
            ),
            models.CheckConstraint(condition=Q(kind__in=ReportKind.values), name="report_kind_valid"),
        ]
        indexes = [models.Index(fields=["kind", "status", "-period_end"], name="report_kind_latest")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.period_start}–{self.period_end}"
