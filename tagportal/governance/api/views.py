"""REST API of governance: change requests and their actions, the review queue,
comments, re-certification, the inbox and the audit export."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import django_filters
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response

from tagportal.catalog.models import BusinessLine, Tag
from tagportal.catalog.services import recertification_due
from tagportal.core import spreadsheets
from tagportal.core.api import RestrictedModelViewSet, RestrictedViewSetMixin
from tagportal.core.filters import DaysFilter, FilterSet, IdFilter
from tagportal.notifications import services as notifications
from tagportal.notifications.models import Notification

from .. import audit, bulk, cleanup, impact, services
from ..choices import ChangeKind, ReportStatus, ReportTrigger, RequestState
from ..models import ChangeRequest, Report
from ..reports import service as report_service
from .serializers import (
    ChangeRequestSerializer,
    CleanupSerializer,
    CommentSerializer,
    DecisionSerializer,
    MarkReadSerializer,
    NotificationSerializer,
    ReportDetailSerializer,
    ReportRequestSerializer,
    ReportSerializer,
    TagRefSerializer,
)


class ChangeRequestFilterSet(FilterSet):
    business_line = django_filters.CharFilter(field_name="business_line__code")
    brand = django_filters.CharFilter(field_name="brand__code")
    state = django_filters.MultipleChoiceFilter(choices=RequestState.choices)
    kind = django_filters.ChoiceFilter(choices=ChangeKind.choices, method="filter_kind")
    proposer = django_filters.CharFilter(field_name="proposer__username")
    tag = IdFilter(field_name="items__tag", distinct=True)
    min_age_days = DaysFilter(method="filter_age", label=_("waiting at least N days"))

    class Meta:
        model = ChangeRequest
        fields = ["is_bulk"]

    def filter_kind(self, queryset, name, value):
        return queryset.filter(items__kind=value).distinct()

    def filter_age(self, queryset, name, value):
        return queryset.filter(submitted_at__lte=timezone.now() - dt.timedelta(days=int(value)))


class ChangeRequestViewSet(RestrictedModelViewSet):
    """Change requests. Actions: submit, withdraw, approve, reject, request-changes, apply,
    comments. A bulk of changes is uploaded to ``bulk`` as CSV or Excel."""

    queryset = ChangeRequest.objects.select_related(
        "business_line", "brand", "proposer", "reviewer"
    ).prefetch_related("items__tag", "items__merge_target", "items__produced_version")
    serializer_class = ChangeRequestSerializer
    filterset_class = ChangeRequestFilterSet
    search_fields = ["title", "description", "items__tag__code", "items__tag__name"]
    ordering_fields = ["created", "submitted_at", "state"]
    http_method_names = ["get", "post", "put", "patch", "head", "options"]
    action_permissions = {
        "submit": "change", "withdraw": "change", "approve": "view", "reject": "view",
        "request_changes": "view", "apply": "view", "comments": "view", "bulk": "add",
        "bulk_template": "view", "queue": "view", "impact": "view",
    }  # fmt: skip

    def _decide(self, request, pk, do):
        cr = self.get_object()
        payload = DecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        cr = do(cr, payload.validated_data)
        return Response(self.get_serializer(ChangeRequest.objects.get(pk=cr.pk)).data)

    @extend_schema(
        request=inline_serializer("Submit", {"confirm_dependents": serializers.BooleanField(required=False)})
    )
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        confirm = _body(request).get("confirm_dependents")
        return self._decide(
            request, pk, lambda cr, data: services.submit(request.user, cr, confirm_dependents=_bool(confirm))
        )

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def withdraw(self, request, pk=None):
        return self._decide(request, pk, lambda cr, data: services.withdraw(request.user, cr))

    @extend_schema(request=DecisionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(
            request,
            pk,
            lambda cr, data: services.approve(request.user, cr, data["reason"], apply_now=data["apply"]),
        )

    @extend_schema(request=DecisionSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, pk, lambda cr, data: services.reject(request.user, cr, data["reason"]))

    @extend_schema(request=DecisionSerializer)
    @action(detail=True, methods=["post"], url_path="request-changes")
    def request_changes(self, request, pk=None):
        return self._decide(
            request, pk, lambda cr, data: services.request_changes(request.user, cr, data["reason"])
        )

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def apply(self, request, pk=None):
        return self._decide(request, pk, lambda cr, data: services.apply(request.user, cr))

    @extend_schema(methods=["GET"], responses=CommentSerializer(many=True), filters=False)
    @extend_schema(
        methods=["POST"],
        request=inline_serializer("NewComment", {"text": serializers.CharField()}),
        responses={201: CommentSerializer},
        filters=False,
    )
    @action(detail=True, methods=["get", "post"])
    def comments(self, request, pk=None):
        """The request's comments, oldest first (paginated as every list); POST adds one."""
        cr = self.get_object()
        if request.method == "POST":
            text = _body(request).get("text", "")
            if not isinstance(text, str):
                raise ValidationError({"text": [_("Expected a text.")]})
            note = services.comment(request.user, cr, text)
            return Response(CommentSerializer(note).data, status=status.HTTP_201_CREATED)
        rows = cr.comments.select_related("author")
        page = self.paginate_queryset(rows)
        data = CommentSerializer(page if page is not None else rows, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(
        request={
            "multipart/form-data": inline_serializer(
                "BulkUpload",
                {
                    "file": serializers.FileField(),
                    "title": serializers.CharField(required=False),
                    "submit": serializers.BooleanField(required=False),
                    "confirm_dependents": serializers.BooleanField(required=False),
                },
            )
        },
        responses={201: ChangeRequestSerializer, 400: OpenApiTypes.OBJECT},
    )
    @action(
        detail=False,
        methods=["post"],
        parser_classes=[MultiPartParser, FormParser, JSONParser],
        throttle_scope="import",
    )
    def bulk(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationError({"file": _("Upload a CSV or Excel (.xlsx) file.")})
        try:
            cr = bulk.propose_from_file(
                request.user,
                upload,
                title=request.data.get("title", ""),
                submit_now=_bool(request.data.get("submit", True)),
                confirm_dependents=_bool(request.data.get("confirm_dependents", False)),
            )
        except bulk.BulkFileError as exc:
            return Response(exc.as_dict(), status=status.HTTP_400_BAD_REQUEST)
        return Response(self.get_serializer(cr).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=False, methods=["get"], url_path="bulk-template")
    def bulk_template(self, request):
        return spreadsheets.attachment(bulk.template_csv(), bulk.TEMPLATE_NAME)

    @extend_schema(responses=ChangeRequestSerializer(many=True))
    @action(detail=False, methods=["get"])
    def queue(self, request):
        """The caller's review queue: submitted requests in business lines they steward."""
        queryset = self.filter_queryset(services.review_queue(request.user))
        page = self.paginate_queryset(queryset)
        data = self.get_serializer(page if page is not None else queryset, many=True).data
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(
        request=None,
        responses={
            200: {"type": "array", "items": {"type": "object", "additionalProperties": {}}},
            202: inline_serializer(
                "ImpactComputing",
                {
                    "state": serializers.CharField(),
                    "items": serializers.ListField(child=serializers.DictField()),
                },
            ),
        },
        filters=False,
    )
    @action(detail=True, methods=["get", "post"], throttle_scope="estimate")
    def impact(self, request, pk=None):
        """The impact preview of the request's rule changes: per changed tag its coverage
        and values before → after, and each audience reading it, size before → after with
        who joins and leaves. GET answers the cached previews (computing missing ones);
        POST computes them again. 202 ``{"state": "computing"}`` while a worker computes."""
        cr = self.get_object()
        state, previews = impact.api_previews(request.user, cr, force=request.method == "POST")
        if state == impact.COMPUTING:
            return Response({"state": state, "items": previews}, status=status.HTTP_202_ACCEPTED)
        return Response(previews)


def _body(request) -> Mapping:
    """The request's body as field → value; a body that is not an object answers 400."""
    if not isinstance(request.data, Mapping):
        raise ValidationError({"non_field_errors": [_("Expected an object of fields and values.")]})
    return request.data


def _bool(value) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


class NotificationViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The caller's in-portal inbox."""

    serializer_class = NotificationSerializer
    permission_classes = [IsAuthenticated]
    filterset_fields = []
    search_fields = ["subject", "body"]
    ordering_fields = ["created"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation
            return Notification.objects.none()
        queryset = notifications.inbox_of(self.request.user)
        if self.request.query_params.get("unread") in ("1", "true"):
            queryset = queryset.filter(read_at__isnull=True)
        return queryset

    @extend_schema(
        request=MarkReadSerializer,
        responses=inline_serializer("MarkedRead", {"marked": serializers.IntegerField()}),
    )
    @action(detail=False, methods=["post"], url_path="mark-read")
    def mark_read(self, request):
        """Mark the messages ``ids`` read (all of the caller's when left out)."""
        payload = MarkReadSerializer(data=_body(request))
        payload.is_valid(raise_exception=True)
        count = notifications.mark_read(request.user, payload.validated_data.get("ids"))
        return Response({"marked": count})


class RecertificationViewSet(viewsets.ViewSet):
    """Published tags due for re-certification in the caller's business lines; ``certify`` is one click."""

    permission_classes = [IsAuthenticated]
    lookup_value_regex = "[0-9]+"

    @extend_schema(responses=TagRefSerializer(many=True))
    def list(self, request):
        tags = Tag.objects.restrict(request.user, "view").filter(
            business_line__in=services.reviewable_business_lines(request.user)
        )
        return Response(TagRefSerializer(recertification_due(tags), many=True).data)

    @extend_schema(
        request=inline_serializer("Certify", {"note": serializers.CharField(required=False)}),
        responses=TagRefSerializer,
    )
    @action(detail=True, methods=["post"])
    def certify(self, request, pk=None):
        tag = get_object_or_404(Tag.objects.restrict(request.user, "view"), pk=pk)
        note = _body(request).get("note", "")
        if not isinstance(note, str):
            raise ValidationError({"note": [_("Expected a text.")]})
        tag = services.certify(request.user, tag, note=note)
        return Response({**TagRefSerializer(tag).data, "certified_at": tag.certified_at})


class CSVRenderer(BaseRenderer):
    """Lets ``?format=csv`` reach the view, which writes the CSV itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes | str) else b""


class AuditViewSet(viewsets.ViewSet):
    """Who changed what, when, and who approved it — as JSON or CSV (``?format=csv``)."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]
    wants_csv = False

    def perform_content_negotiation(self, request, force=False):
        renderer, media_type = super().perform_content_negotiation(request, force)
        if renderer.format == "csv":
            # the view writes the CSV itself; errors still answer JSON (not an empty body)
            self.wants_csv = True
            renderer = JSONRenderer()
            media_type = renderer.media_type
        return renderer, media_type

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "start", OpenApiTypes.DATE, required=True, description="first day (Beijing time)"
            ),
            OpenApiParameter("end", OpenApiTypes.DATE, required=True, description="last day (Beijing time)"),
            OpenApiParameter("business_line", OpenApiTypes.STR, description="business line code"),
            OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "csv"]),
        ],
        responses={(200, "application/json"): OpenApiTypes.OBJECT, (200, "text/csv"): OpenApiTypes.BINARY},
    )
    def list(self, request):
        if not request.user.has_perm("governance.view_auditevent"):
            from rest_framework.exceptions import PermissionDenied

            raise PermissionDenied(_("Only data stewards and admins export the audit trail."))
        try:
            start = dt.date.fromisoformat(request.query_params.get("start", ""))
            end = dt.date.fromisoformat(request.query_params.get("end", ""))
        except ValueError as exc:
            raise ValidationError({"start": _("Give start and end as dates, e.g. 2026-11-01.")}) from exc
        if start > end:
            raise ValidationError({"end": _("The end is before the start.")})
        business_line = None
        if request.query_params.get("business_line"):
            business_line = (
                BusinessLine.objects.restrict(request.user, "view")
                .filter(code=request.query_params["business_line"])
                .first()
            )
            if business_line is None:
                raise ValidationError({"business_line": _("Unknown business line.")})
        rows = audit.audit_rows(request.user, start, end, business_line)
        if request.query_params.get("format") == "csv" or self.wants_csv:
            return spreadsheets.attachment(audit.to_csv(rows), audit.csv_filename(start, end))
        return Response({"start": start, "end": end, "count": len(rows), "rows": rows})


class ReportFilterSet(FilterSet):
    business_line = django_filters.CharFilter(field_name="business_line__code")
    brand = django_filters.CharFilter(field_name="brand__code")

    class Meta:
        model = Report
        fields = ["kind", "status", "business_line", "brand"]


class ReportViewSet(
    RestrictedViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Usage, cold-tag, merge-suggestion and activity reports. ``POST`` runs one (in
    Celery; at once without a broker); the same parameters give the same report, run
    again. A report's rows are limited to the tags the caller may view. ``cleanup``
    turns findings into one bulk change request per business line."""

    queryset = Report.objects.select_related("business_line", "brand", "region", "requested_by")
    serializer_class = ReportSerializer
    filterset_class = ReportFilterSet
    ordering_fields = ["period_end", "finished_at", "kind"]
    action_permissions = {"cleanup": "view", "create": "view"}  # running needs governance.run_report

    def get_serializer_class(self):
        return ReportDetailSerializer if self.action == "retrieve" else ReportSerializer

    @extend_schema(request=ReportRequestSerializer, responses={202: ReportSerializer, 200: ReportSerializer})
    def create(self, request):
        payload = ReportRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        report = report_service.request_report(
            request.user,
            data["kind"],
            trigger=ReportTrigger.API,
            start=data.get("period_start"),
            end=data.get("period_end"),
            business_line=data.get("business_line") or None,
            brand=data.get("brand") or None,
            region=data.get("region") or None,
        )
        report.refresh_from_db()
        code = status.HTTP_200_OK if report.status == ReportStatus.SUCCESS else status.HTTP_202_ACCEPTED
        return Response(ReportSerializer(report, context={"request": request}).data, status=code)

    @extend_schema(
        request=CleanupSerializer,
        responses={201: ChangeRequestSerializer(many=True), 200: OpenApiTypes.OBJECT},
    )
    @action(detail=True, methods=["post"], throttle_scope="estimate")
    def cleanup(self, request, pk=None):
        report = self.get_object()
        payload = CleanupSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        if not request.user.has_perm("governance.add_changerequest"):
            raise PermissionDenied(_("You may not propose changes."))
        findings = cleanup.parse_findings(request.user, report, data["action"], data["findings"])
        if data["preview"]:
            return Response(
                {
                    "findings": [
                        {
                            "tag": row["tag"].code,
                            "action": row["action"],
                            "target": row["target"].code if row["target"] else None,
                            "affected_tags": [t.code for t in row["impact"]["tags"]],
                            "sources": [s.code for s in row["impact"]["sources"]],
                            "audiences": [a.name for a in row["impact"]["audiences"]],
                            "owners": [str(u) for u in row["owners"]],
                        }
                        for row in cleanup.preview(request.user, findings)
                    ]
                }
            )
        created = cleanup.propose_cleanup(request.user, report, findings, reason=data["reason"])
        fresh = ChangeRequest.objects.filter(pk__in=[cr.pk for cr in created]).prefetch_related(
            "items__tag", "items__merge_target", "items__produced_version"
        )
        return Response(
            ChangeRequestSerializer(fresh, many=True, context={"request": request}).data,
            status=status.HTTP_201_CREATED,
        )
