"""REST API of the tag dictionary: one viewset per model, scoped by ``restrict``."""

from __future__ import annotations

import django_filters
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from tagportal.core.api import RestrictedModelViewSet, RestrictedReadOnlyViewSet
from tagportal.core.filters import FilterSet, IdFilter, parse_int
from tagportal.core.permissions import may_add_into
from tagportal.usage import services as usage

from .. import export as tag_export
from .. import services
from ..choices import RefreshMode, TagKind, TagStatus, ValueType
from ..history import changed_field_names, compare_records
from ..models import Brand, BusinessLine, Category, NamingRule, Region, Tag, TagVersion
from ..templates import TemplateError, available_packs
from .serializers import (
    ApplyTemplateSerializer,
    BrandSerializer,
    BusinessLineSerializer,
    CategorySerializer,
    FieldChangeSerializer,
    HistoryRecordSerializer,
    NamingRuleSerializer,
    RegionSerializer,
    TagSerializer,
    TagVersionSerializer,
    TemplateSerializer,
)


class TagFilterSet(FilterSet):
    business_line = django_filters.CharFilter(field_name="business_line__code")
    brand = django_filters.CharFilter(field_name="brand__code")
    region = django_filters.CharFilter(field_name="regions__code", distinct=True)
    category = IdFilter(method="filter_category", label=_("category (and its subcategories)"))
    owner = django_filters.CharFilter(field_name="owner__username")
    code = django_filters.CharFilter()
    kind = django_filters.MultipleChoiceFilter(choices=TagKind.choices)
    value_type = django_filters.MultipleChoiceFilter(choices=ValueType.choices)
    status = django_filters.MultipleChoiceFilter(choices=TagStatus.choices)
    refresh_mode = django_filters.ChoiceFilter(choices=RefreshMode.choices)
    template = django_filters.CharFilter()
    updated_after = django_filters.IsoDateTimeFilter(field_name="last_updated", lookup_expr="gte")

    class Meta:
        model = Tag
        fields = []

    def filter_category(self, queryset, name, value):
        return queryset.filter(category__in=Category.descendant_ids(int(value)))


class BrandFilterSet(FilterSet):
    business_line = django_filters.CharFilter(field_name="business_line__code")

    class Meta:
        model = Brand
        fields = ["is_active"]


class RegionFilterSet(FilterSet):
    parent = django_filters.CharFilter(field_name="parent__code")

    class Meta:
        model = Region
        fields = ["level"]


class VersionFilterSet(FilterSet):
    tag_code = django_filters.CharFilter(field_name="tag__code")
    brand = django_filters.CharFilter(field_name="tag__brand__code")

    class Meta:
        model = TagVersion
        fields = ["tag", "version"]


class BusinessLineViewSet(RestrictedModelViewSet):
    queryset = BusinessLine.objects.all()
    serializer_class = BusinessLineSerializer
    search_fields = ["code", "name", "name_en", "description"]
    ordering_fields = ["code", "name", "created"]
    filterset_fields = ["is_active"]


class BrandViewSet(RestrictedModelViewSet):
    queryset = Brand.objects.select_related("business_line")
    serializer_class = BrandSerializer
    filterset_class = BrandFilterSet
    search_fields = ["code", "name", "name_en", "description"]
    ordering_fields = ["code", "name", "created"]

    def _check_business_line(self, serializer):
        business_line = serializer.validated_data.get("business_line")
        if business_line is not None and not may_add_into(self.request.user, Brand, business_line):
            raise DjangoPermissionDenied(
                _("You may not add brands to the business line “%(bl)s”.") % {"bl": business_line}
            )

    def perform_create(self, serializer):
        self._check_business_line(serializer)
        serializer.save()

    def perform_update(self, serializer):
        moving = serializer.validated_data.get("business_line")
        if moving is not None and moving.pk != serializer.instance.business_line_id:
            self._check_business_line(serializer)
            if serializer.instance.tags.exists():
                raise ValidationError(
                    {"business_line": _("A brand with tags cannot move to another business line.")}
                )
        serializer.save()


class RegionViewSet(RestrictedModelViewSet):
    queryset = Region.objects.select_related("parent__parent")
    serializer_class = RegionSerializer
    filterset_class = RegionFilterSet
    search_fields = ["code", "name", "name_en"]
    ordering_fields = ["code", "name", "level"]


class NamingRuleViewSet(RestrictedModelViewSet):
    queryset = NamingRule.objects.all()
    serializer_class = NamingRuleSerializer
    search_fields = ["name", "pattern", "description"]
    ordering_fields = ["name"]


class CategoryViewSet(RestrictedModelViewSet):
    queryset = Category.objects.select_related("naming_rule")
    serializer_class = CategorySerializer
    filterset_fields = ["parent", "naming_rule"]
    search_fields = ["code", "name", "name_en", "description"]
    ordering_fields = ["code", "name", "order"]


EXPORT_PARAMETERS = [
    OpenApiParameter(
        "format",
        OpenApiTypes.STR,
        enum=list(tag_export.FORMATS),
        default="xlsx",
        description="xlsx (Excel) or csv (UTF-8 with a byte order mark)",
    ),
    OpenApiParameter(
        "lang",
        OpenApiTypes.STR,
        enum=[code for code, _name in settings.LANGUAGES],
        default=tag_export.EXPORT_LANGUAGE,
        description="language of the headers and labels (Chinese unless asked otherwise)",
    ),
    *(
        OpenApiParameter(name, OpenApiTypes.STR, description=description)
        for name, description in (
            ("business_line", "business line id or code"),
            ("brand", "brand id or code"),
            ("region", "region id or code"),
            ("status", "tag status, e.g. published"),
            ("category", "category id or code, with its subcategories"),
        )
    ),
]


class TagViewSet(RestrictedModelViewSet):
    """The tag dictionary. ``history`` lists every change; ``diff`` compares any two;
    ``export`` downloads it as a spreadsheet.

    Reading a tag (its detail, ``lookup``, ``history``, ``diff``, ``versions``) counts as
    a use of it (``tag_read``, by the caller); listing the dictionary or exporting it does not."""

    queryset = Tag.objects.select_related(
        "category__parent__parent", "brand", "business_line", "owner"
    ).prefetch_related("regions")
    serializer_class = TagSerializer
    filterset_class = TagFilterSet
    search_fields = ["code", "name", "name_en", "description"]
    ordering_fields = ["code", "name", "name_en", "created", "last_updated", "status"]
    ordering = ["brand__code", "code"]
    action_permissions = {
        "history": "view",
        "diff": "view",
        "versions": "view",
        "suggest_code": "add",
        "lookup": "view",
        "export": "view",
    }

    def _count_read(self, tag) -> None:
        usage.record_safely([tag.pk], self.request.user.pk, usage.UsageKind.TAG_READ)

    def perform_content_negotiation(self, request, force=False):
        if getattr(self, "action", None) == "export":
            # ``format`` names the file to download there, not a renderer; errors answer JSON.
            renderer = JSONRenderer()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    def retrieve(self, request, *args, **kwargs):
        tag = self.get_object()
        data = self.get_serializer(tag).data
        self._count_read(tag)
        return Response(data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "code", OpenApiTypes.STR, required=True, description="tag code (old codes of merged tags too)"
            ),
            OpenApiParameter("brand", OpenApiTypes.STR, description="brand code"),
        ],
        responses=inline_serializer(
            "TagLookup", {"tag": TagSerializer(), "notice": serializers.CharField(allow_null=True)}
        ),
    )
    @action(detail=False, methods=["get"])
    def lookup(self, request):
        """Find a tag by its code. The code of a tag merged into another resolves to that
        tag, with a notice saying so."""
        code = request.query_params.get("code", "").strip()
        if not code:
            raise ValidationError({"code": _("Give a tag code.")})
        tag, alias = services.resolve_code(self.get_queryset(), request.query_params.get("brand", ""), code)
        if tag is None:
            raise NotFound(_("No tag with the code “%(code)s”.") % {"code": code})
        notice = None
        if alias is not None:
            notice = _("“%(old)s” was merged into “%(new)s” (%(name)s); use the new code.") % {
                "old": alias.code,
                "new": tag.code,
                "name": tag.name,
            }
        response = Response({"tag": self.get_serializer(tag).data, "notice": notice})
        self._count_read(tag)
        if notice:
            response["Warning"] = '299 - "tag code merged"'
        return response

    @extend_schema(responses=HistoryRecordSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def history(self, request, pk=None):
        tag = self.get_object()
        records = list(tag.history.select_related("history_user").order_by("history_date", "history_id"))
        rows = []
        previous = None
        for record in records:
            rows.append(
                {
                    "history_id": record.history_id,
                    "history_date": record.history_date,
                    "history_type": {"+": "created", "~": "changed", "-": "deleted"}[record.history_type],
                    "history_user": record.history_user.username if record.history_user else None,
                    "change_reason": record.history_change_reason,
                    "changed_fields": changed_field_names(previous, record),
                }
            )
            previous = record
        rows.reverse()
        page = self.paginate_queryset(rows)
        data = HistoryRecordSerializer(page if page is not None else rows, many=True).data
        self._count_read(tag)
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.INT, description="history_id of the older record"),
            OpenApiParameter("to", OpenApiTypes.INT, description="history_id of the newer record"),
            OpenApiParameter("all", OpenApiTypes.BOOL, description="include unchanged fields"),
        ],
        responses=inline_serializer(
            "TagDiff",
            {
                "from": serializers.IntegerField(),
                "to": serializers.IntegerField(),
                "changes": FieldChangeSerializer(many=True),
            },
        ),
    )
    @action(detail=True, methods=["get"])
    def diff(self, request, pk=None):
        tag = self.get_object()
        try:
            first = parse_int(request.query_params.get("from"), "from", min_value=1)
            second = parse_int(request.query_params.get("to"), "to", min_value=1)
        except DjangoValidationError as exc:
            message = _("Give 'from' and 'to' as history ids of this tag.")
            raise ValidationError({"detail": " ".join([message, *exc.messages])}) from exc
        records = {r.history_id: r for r in tag.history.filter(history_id__in=[first, second])}
        missing = [str(h) for h in (first, second) if h not in records]
        if missing:
            raise NotFound(_("No history record %(ids)s for this tag.") % {"ids": ", ".join(missing)})
        old, new = (
            sorted(records.values(), key=lambda r: (r.history_date, r.history_id))
            if first != second
            else (
                records[first],
                records[first],
            )
        )
        changes = compare_records(old, new)
        show_all = request.query_params.get("all") in ("1", "true")
        self._count_read(tag)
        return Response(
            {
                "from": old.history_id,
                "to": new.history_id,
                "changes": [c.as_dict() for c in changes if c.changed or show_all],
            }
        )

    @extend_schema(responses=TagVersionSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"])
    def versions(self, request, pk=None):
        """The tag's published versions, newest first (paginated as every list)."""
        tag = self.get_object()
        rows = tag.versions.select_related("published_by", "tag").order_by("-version")
        page = self.paginate_queryset(rows)
        data = TagVersionSerializer(page if page is not None else rows, many=True).data
        self._count_read(tag)
        return self.get_paginated_response(data) if page is not None else Response(data)

    @extend_schema(
        parameters=EXPORT_PARAMETERS,
        responses={
            (200, tag_export.XLSX): OpenApiTypes.BINARY,
            (200, "text/csv"): OpenApiTypes.BINARY,
        },
    )
    @action(detail=False, methods=["get"])
    def export(self, request):
        """The dictionary as an Excel or CSV file (``tag-dictionary-<Beijing date>.xlsx``):
        the tags the caller may view, narrowed by the filters (ids or codes; several
        comma-separated), with coverage and use over the last 7, 30 and 90 days. Headers in
        Chinese unless ``lang=en``."""
        params = request.query_params
        try:
            queryset = tag_export.filter_tags(self.get_queryset(), params)
            return tag_export.export_response(
                request.user, queryset, params.get("format") or "xlsx", params.get("lang")
            )
        except tag_export.ExportError as exc:
            raise ValidationError({"detail": str(exc)}) from exc

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "name", OpenApiTypes.STR, required=True, description="Chinese name, e.g. 肤质类型"
            ),
            OpenApiParameter("brand", OpenApiTypes.STR, description="brand code"),
            OpenApiParameter("brand_id", OpenApiTypes.INT, description="brand id (instead of its code)"),
            OpenApiParameter("category", OpenApiTypes.INT, description="category id"),
        ],
        responses=inline_serializer("CodeSuggestion", {"code": serializers.CharField()}),
    )
    @action(detail=False, methods=["get"], url_path="suggest-code")
    def suggest_code(self, request):
        name = request.query_params.get("name", "").strip()
        if not name:
            raise ValidationError({"name": _("Give the tag's Chinese name.")})
        brand = category = None
        brands = Brand.objects.restrict(request.user, "view").select_related("business_line")
        params = request.query_params
        if params.get("brand"):
            brand = brands.filter(code=params["brand"]).first()
            if brand is None:
                raise ValidationError({"brand": _("Unknown brand.")})
        elif params.get("brand_id"):
            brand = brands.filter(pk=params["brand_id"]).first() if params["brand_id"].isdigit() else None
            if brand is None:
                raise ValidationError({"brand_id": _("Unknown brand.")})
        if request.query_params.get("category"):
            try:
                category = Category.objects.get(pk=int(request.query_params["category"]))
            except (ValueError, Category.DoesNotExist) as exc:
                raise ValidationError({"category": _("Unknown category.")}) from exc
        return Response({"code": services.suggest_code(name, category, brand)})

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "name", OpenApiTypes.STR, required=True, description="Chinese name, e.g. 近30天到店次数"
            ),
            OpenApiParameter("description", OpenApiTypes.STR, description="the tag's description"),
            OpenApiParameter("name_en", OpenApiTypes.STR, description="English name"),
            OpenApiParameter("definition", OpenApiTypes.STR, description="the definition as JSON"),
            OpenApiParameter(
                "exclude", OpenApiTypes.INT, description="a tag id to leave out (the tag itself)"
            ),
        ],
        responses=inline_serializer(
            "CategorySuggestion",
            {
                "categories": serializers.ListField(child=serializers.DictField()),
                "business_lines": serializers.ListField(child=serializers.DictField()),
            },
        ),
    )
    @action(detail=False, methods=["get"], url_path="suggest-category")
    def suggest_category(self, request):
        """Categories and business lines for a new tag, ranked against the tags you may view
        (their nearest tags by name, description and definition vote)."""
        import json

        params = request.query_params
        name = params.get("name", "").strip()
        if not name:
            raise ValidationError({"name": _("Give the tag's Chinese name.")})
        definition = None
        if params.get("definition"):
            try:
                definition = json.loads(params["definition"])
            except ValueError as exc:
                raise ValidationError({"definition": _("The definition is not valid JSON.")}) from exc
        exclude = parse_int(params.get("exclude"), "exclude", required=False)
        return Response(
            services.suggest_category(
                request.user,
                name=name,
                description=params.get("description", ""),
                name_en=params.get("name_en", ""),
                definition=definition,
                exclude=exclude,
            )
        )


class TagVersionViewSet(RestrictedReadOnlyViewSet):
    """Published versions: immutable snapshots that computations refer to."""

    queryset = TagVersion.objects.select_related("tag", "published_by")
    serializer_class = TagVersionSerializer
    filterset_class = VersionFilterSet
    ordering_fields = ["published_at", "version"]
    search_fields = ["tag__code", "tag__name", "note"]


class TemplateViewSet(viewsets.ViewSet):
    """Industry template packs; ``apply`` adds one to a brand (idempotent)."""

    lookup_field = "key"
    lookup_value_regex = "[a-z_]+"
    serializer_class = TemplateSerializer

    def _data(self, pack):
        return {
            "key": pack.key,
            "name": pack.name,
            "name_en": pack.name_en,
            "version": pack.version,
            "tags": len(pack.tags),
        }

    def list(self, request):
        return Response(
            TemplateSerializer([self._data(p) for p in available_packs().values()], many=True).data
        )

    def retrieve(self, request, key=None):
        pack = available_packs().get(key)
        if pack is None:
            raise NotFound(_("Unknown template."))
        return Response(self._data(pack))

    @extend_schema(
        request=ApplyTemplateSerializer,
        responses=inline_serializer(
            "TemplateResult",
            {
                "template": serializers.CharField(),
                "brand": serializers.CharField(),
                "created": serializers.IntegerField(),
                "skipped": serializers.IntegerField(),
                "categories_created": serializers.IntegerField(),
                "naming_rule_created": serializers.BooleanField(),
                "created_codes": serializers.ListField(child=serializers.CharField()),
            },
        ),
    )
    @action(detail=True, methods=["post"])
    def apply(self, request, key=None):
        if key not in available_packs():
            raise NotFound(_("Unknown template."))
        payload = ApplyTemplateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        brand = get_object_or_404(
            Brand.objects.restrict(request.user, "view"), code=payload.validated_data["brand"]
        )
        try:
            result = services.apply_template(brand, key, user=request.user)
        except TemplateError as exc:
            raise ValidationError({"template": str(exc)}) from exc
        return Response(
            result.as_dict(), status=status.HTTP_201_CREATED if result.changed else status.HTTP_200_OK
        )
