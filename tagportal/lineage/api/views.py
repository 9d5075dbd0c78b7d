"""REST API of the lineage: data sources and fields (one viewset per model, scoped by
``restrict``), the inputs each tag reads, and impact analysis."""

from __future__ import annotations

import django_filters
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import Count
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from tagportal.catalog.models import Tag
from tagportal.core.api import RestrictedModelViewSet, RestrictedViewSetMixin
from tagportal.core.filters import FilterSet
from tagportal.core.permissions import may
from tagportal.predictive.models import PredictiveModel

from .. import services
from ..choices import SourceKind
from ..models import DataField, DataSource
from .serializers import DataFieldSerializer, DataSourceSerializer, InputsWriteSerializer, LoadSerializer

TRUE_VALUES = ("1", "true", "yes", "on")


CONFIRM = OpenApiParameter(
    "confirm", OpenApiTypes.BOOL, description="delete even though tags read it (they lose this input)"
)


DEPENDENTS_RESPONSE = inline_serializer(
    "Dependents",
    {
        "detail": serializers.CharField(),
        "tags": serializers.ListField(child=serializers.DictField()),
        "other_tags": serializers.IntegerField(),
    },
)


def _tag_ref(tag: Tag, depth: int | None = None, stale: set[int] | None = None) -> dict:
    data = {"id": tag.pk, "code": tag.code, "name": tag.name, "brand": tag.brand.code, "status": tag.status}
    if depth is not None:
        data["depth"] = depth
    if stale is not None:
        data["stale"] = tag.pk in stale
    return data


def _field_ref(data_field: DataField) -> dict:
    return {
        "id": data_field.pk,
        "source": data_field.source.code,
        "name": data_field.name,
        "maps_to": data_field.maps_to,
    }


def _source_ref(source: DataSource) -> dict:
    return {"id": source.pk, "code": source.code, "name": source.name, "kind": source.kind}


def _model_ref(model: PredictiveModel) -> dict:
    return {
        "id": model.pk,
        "name": model.name,
        "kind": model.kind,
        "kind_display": str(model.get_kind_display()),
        "brand": model.brand.code,
        "url": reverse("predictive:detail", args=[model.pk]),
    }


def _visible_models(user, models) -> list[PredictiveModel]:
    visible = set(
        PredictiveModel.objects.restrict(user, "view")
        .filter(pk__in=[m.pk for m in models])
        .values_list("pk", flat=True)
    )
    return [m for m in models if m.pk in visible]


class DataSourceFilterSet(FilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=SourceKind.choices)
    business_line = django_filters.CharFilter(
        method="filter_business_line", label=_("business line code (“shared” for shared sources)")
    )
    stale = django_filters.BooleanFilter(method="filter_stale", label=_("past its refresh SLA"))
    owner = django_filters.CharFilter(field_name="owner__username")

    class Meta:
        model = DataSource
        fields = ["is_active"]

    def filter_business_line(self, queryset, name, value):
        if value == "shared":
            return queryset.filter(business_line__isnull=True)
        return queryset.filter(business_line__code=value)

    def filter_stale(self, queryset, name, value):
        stale = DataSource.objects.stale().values("pk")
        return queryset.filter(pk__in=stale) if value else queryset.exclude(pk__in=stale)


class DataFieldFilterSet(FilterSet):
    source = django_filters.CharFilter(field_name="source__code")
    maps_to = django_filters.CharFilter()

    class Meta:
        model = DataField
        fields = ["data_type"]


def _confirmed(request) -> bool:
    return request.query_params.get("confirm", "").lower() in TRUE_VALUES


def _dependents_response(request, exc: services.DependentsExist) -> Response:
    visible = set(
        Tag.objects.restrict(request.user, "view")
        .filter(pk__in=exc.impact.tag_ids)
        .values_list("pk", flat=True)
    )
    shown = [_tag_ref(t, exc.impact.depth.get(t.pk)) for t in exc.tags if t.pk in visible]
    return Response(
        {
            "detail": _("Tags read this; add ?confirm=true to delete it anyway."),
            "tags": shown,
            "other_tags": len(exc.tags) - len(shown),
        },
        status=status.HTTP_409_CONFLICT,
    )


class DataSourceViewSet(RestrictedModelViewSet):
    """Data sources. ``loaded`` records a successful load; deleting a source that tags
    read answers 409 listing them, unless ``?confirm=true``."""

    queryset = DataSource.objects.select_related("business_line", "owner").annotate(
        field_count=Count("fields")
    )
    serializer_class = DataSourceSerializer
    filterset_class = DataSourceFilterSet
    search_fields = ["code", "name", "name_en", "description"]
    ordering_fields = ["code", "name", "kind", "last_loaded_at", "refresh_sla_hours", "created"]
    ordering = ["code"]
    action_permissions = {"loaded": "change"}

    def _check_business_line(self, serializer):
        business_line = serializer.validated_data.get("business_line")
        if not services.may_use_business_line(self.request.user, business_line):
            if business_line is None:
                raise DjangoPermissionDenied(
                    _("Only an administrator may add or change shared data sources.")
                )
            raise DjangoPermissionDenied(
                _("You may not add data sources to the business line “%(bl)s”.") % {"bl": business_line}
            )

    def perform_create(self, serializer):
        self._check_business_line(serializer)
        serializer.save().field_count = 0  # as the list annotates it: a new source has no fields

    def perform_update(self, serializer):
        if "business_line" in serializer.validated_data:
            moving = serializer.validated_data["business_line"]
            if getattr(moving, "pk", None) != serializer.instance.business_line_id:
                self._check_business_line(serializer)
        serializer.save()

    @extend_schema(parameters=[CONFIRM], responses={204: None, 409: DEPENDENTS_RESPONSE})
    def destroy(self, request, *args, **kwargs):
        source = self.get_object()
        try:
            services.delete_source(
                request.user, source, confirm=_confirmed(request), reason=_("Deleted via the API")
            )
        except services.DependentsExist as exc:
            return _dependents_response(request, exc)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=LoadSerializer, responses=DataSourceSerializer)
    @action(detail=True, methods=["post"])
    def loaded(self, request, pk=None):
        source = self.get_object()
        payload = LoadSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        services.record_load(source, at=payload.validated_data.get("at"), user=request.user)
        return Response(self.get_serializer(self.get_queryset().get(pk=source.pk)).data)


class DataFieldViewSet(RestrictedModelViewSet):
    """The fields each source delivers and the engine field each one feeds. Deleting a
    field that tags read answers 409 listing them, unless ``?confirm=true``."""

    queryset = DataField.objects.select_related("source").annotate(dependent_tags=Count("tag_inputs"))
    serializer_class = DataFieldSerializer
    filterset_class = DataFieldFilterSet
    search_fields = ["name", "description", "maps_to", "source__code", "source__name"]
    ordering_fields = ["name", "maps_to", "created"]
    ordering = ["source__code", "name"]

    def _check_source(self, serializer):
        source = serializer.validated_data.get("source")
        if source is not None and not may(self.request.user, source, "change"):
            raise DjangoPermissionDenied(
                _("You may not add fields to the data source “%(source)s”.") % {"source": source}
            )

    def perform_create(self, serializer):
        self._check_source(serializer)
        serializer.save().dependent_tags = 0  # as the list annotates it: no tag reads a new field yet

    def perform_update(self, serializer):
        source = serializer.validated_data.get("source")
        if source is not None and source.pk != serializer.instance.source_id:
            self._check_source(serializer)
        serializer.save()

    @extend_schema(parameters=[CONFIRM], responses={204: None, 409: DEPENDENTS_RESPONSE})
    def destroy(self, request, *args, **kwargs):
        data_field = self.get_object()
        try:
            services.delete_field(
                request.user, data_field, confirm=_confirmed(request), reason=_("Deleted via the API")
            )
        except services.DependentsExist as exc:
            return _dependents_response(request, exc)
        return Response(status=status.HTTP_204_NO_CONTENT)


TAG_ID = OpenApiParameter("tag_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="tag id")


TAG_INPUTS_RESPONSE = inline_serializer(
    "TagInputs",
    {
        "tag": serializers.DictField(),
        "fields": serializers.ListField(child=serializers.DictField()),
        "tags": serializers.ListField(child=serializers.DictField()),
        "model": serializers.DictField(
            allow_null=True, help_text="the algorithm model filling the tag (null: none, or not visible)"
        ),
        "reads": serializers.DictField(),
        "uncovered": serializers.ListField(child=serializers.CharField()),
    },
)


class TagInputsViewSet(RestrictedViewSetMixin, viewsets.GenericViewSet):
    """What a tag reads: ``GET`` lists its inputs, ``PUT`` declares the fields and tags it
    reads (inputs derived from its definition are kept). Viewing needs the tag; declaring
    needs permission to change it."""

    queryset = Tag.objects.select_related("brand")
    serializer_class = InputsWriteSerializer
    lookup_url_kwarg = "tag_id"
    lookup_value_regex = r"\d+"

    def _payload(self, tag: Tag, uncovered: list[str] | None = None) -> dict:
        user = self.request.user
        reads = services.definition_reads(tag.definition)
        rows = list(tag.lineage_inputs.select_related("field__source", "upstream__brand"))
        visible_fields = set(
            DataField.objects.restrict(user, "view")
            .filter(pk__in=[r.field_id for r in rows if r.field_id])
            .values_list("pk", flat=True)
        )
        visible_tags = set(
            Tag.objects.restrict(user, "view")
            .filter(pk__in=[r.upstream_id for r in rows if r.upstream_id])
            .values_list("pk", flat=True)
        )
        fields = [{**_field_ref(r.field), "origin": r.origin} for r in rows if r.field_id in visible_fields]
        tags = [{**_tag_ref(r.upstream), "origin": r.origin} for r in rows if r.upstream_id in visible_tags]
        model = (
            PredictiveModel.objects.restrict(user, "view")
            .filter(outputs__tag=tag, is_active=True)
            .select_related("brand")
            .first()
        )
        return {
            "tag": _tag_ref(tag),
            "fields": sorted(fields, key=lambda f: (f["source"], f["name"])),
            "tags": sorted(tags, key=lambda t: t["code"]),
            "model": _model_ref(model) if model is not None else None,
            "reads": {"fields": sorted(reads.fields), "tags": sorted(reads.tags)},
            "uncovered": services.uncovered_fields(tag, reads) if uncovered is None else uncovered,
        }

    @extend_schema(methods=["GET"], parameters=[TAG_ID], responses=TAG_INPUTS_RESPONSE)
    @extend_schema(
        methods=["PUT"], parameters=[TAG_ID], request=InputsWriteSerializer, responses=TAG_INPUTS_RESPONSE
    )
    @action(detail=True, methods=["get", "put"])
    def inputs(self, request, tag_id=None):
        tag = self.get_object()
        if request.method == "GET":
            return Response(self._payload(tag))
        payload = InputsWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        result = services.declare_inputs(
            request.user,
            tag,
            fields=payload.validated_data["fields"],
            tags=payload.validated_data["tags"],
            reason=_("Inputs declared via the API"),
        )
        return Response(self._payload(tag, result.uncovered))


class ImpactView(APIView):
    """What depends on a data source, a data field or a tag, transitively (give exactly
    one of ``source`` (code), ``field`` (id), ``tag`` (id)); ``direction=upstream`` lists
    what a tag reads instead. ``models`` are the algorithm models on the way (a model
    reading an affected field; upstream, the model filling the tag). Answers 404 for
    what the caller may not view; tags and models the caller may not view are counted in
    ``other_tags`` and ``other_models`` but not listed."""

    @extend_schema(
        parameters=[
            OpenApiParameter("source", OpenApiTypes.STR, description="data source code"),
            OpenApiParameter("field", OpenApiTypes.INT, description="data field id"),
            OpenApiParameter("tag", OpenApiTypes.INT, description="tag id"),
            OpenApiParameter("direction", OpenApiTypes.STR, enum=["downstream", "upstream"]),
        ],
        responses=inline_serializer(
            "Impact",
            {
                "root": serializers.DictField(),
                "direction": serializers.CharField(),
                "sources": serializers.ListField(child=serializers.DictField()),
                "fields": serializers.ListField(child=serializers.DictField()),
                "models": serializers.ListField(
                    child=serializers.DictField(), help_text="algorithm models: id, name, kind, brand, url"
                ),
                "other_models": serializers.IntegerField(),
                "tags": serializers.ListField(child=serializers.DictField()),
                "other_tags": serializers.IntegerField(),
                "audiences": serializers.ListField(child=serializers.DictField()),
                "other_audiences": serializers.IntegerField(),
            },
        ),
    )
    def get(self, request):
        root, kind = self._root(request)
        direction = request.query_params.get("direction", "downstream")
        if direction not in ("downstream", "upstream"):
            raise ValidationError({"direction": _("Expected “downstream” or “upstream”.")})
        if direction == "upstream" and kind != "tag":
            raise ValidationError({"direction": _("Only a tag has an upstream.")})
        found = services.upstream(root) if direction == "upstream" else services.impact(root)
        user = request.user
        visible_tags = set(
            Tag.objects.restrict(user, "view").filter(pk__in=found.tag_ids).values_list("pk", flat=True)
        )
        visible_fields = set(
            DataField.objects.restrict(user, "view")
            .filter(pk__in=[f.pk for f in found.fields])
            .values_list("pk", flat=True)
        )
        visible_sources = set(
            DataSource.objects.restrict(user, "view")
            .filter(pk__in=[s.pk for s in found.sources])
            .values_list("pk", flat=True)
        )
        stale = services.stale_tag_ids(Tag.objects.filter(pk__in=visible_tags)) if visible_tags else set()
        models = _visible_models(user, found.models)
        from tagportal.audiences.models import Audience

        affected = list(found.audiences())
        visible_audiences = set(
            Audience.objects.restrict(user, "view")
            .filter(pk__in=[a.pk for a in affected])
            .values_list("pk", flat=True)
        )
        root_data = {
            "source": _source_ref,
            "field": _field_ref,
            "tag": _tag_ref,
        }[kind](root)
        return Response(
            {
                "root": {**root_data, "type": kind},
                "direction": direction,
                "sources": [_source_ref(s) for s in found.sources if s.pk in visible_sources],
                "fields": [_field_ref(f) for f in found.fields if f.pk in visible_fields],
                "models": [_model_ref(m) for m in models],
                "other_models": len(found.models) - len(models),
                "tags": [_tag_ref(t, found.depth[t.pk], stale) for t in found.tags if t.pk in visible_tags],
                "other_tags": len(found.tags) - len(visible_tags),
                "audiences": [
                    {"id": a.pk, "name": a.name, "brand": a.brand.code, "size": a.size, "is_live": a.is_live}
                    for a in affected
                    if a.pk in visible_audiences
                ],
                "other_audiences": len(affected) - len(visible_audiences),
            }
        )

    def _root(self, request):
        params = request.query_params
        given = [key for key in ("source", "field", "tag") if params.get(key)]
        if len(given) != 1:
            raise ValidationError(
                {"detail": _("Give exactly one of “source” (code), “field” (id) or “tag” (id).")}
            )
        key = given[0]
        value = params[key]
        user = request.user
        if key == "source":
            obj = DataSource.objects.restrict(user, "view").filter(code=value).first()
        elif not value.isdigit():
            raise ValidationError({key: _("Expected an id.")})
        elif key == "field":
            obj = DataField.objects.restrict(user, "view").select_related("source").filter(pk=value).first()
        else:
            obj = Tag.objects.restrict(user, "view").select_related("brand").filter(pk=value).first()
        if obj is None:
            raise NotFound(_("Not found."))
        return obj, key
