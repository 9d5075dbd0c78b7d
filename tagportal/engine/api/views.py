"""REST API of tag results: request a computation, read computation states and runs;
send realtime events and read people's tag values (the profile tag API)."""

from __future__ import annotations

from dataclasses import asdict

import django_filters
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from tagportal.catalog.api import rules as rules_api
from tagportal.catalog.models import Brand, Tag
from tagportal.core.api import RestrictedReadOnlyViewSet
from tagportal.core.filters import FilterSet
from tagportal.core.permissions import may, may_add_into
from tagportal.profiles import lookups, pii
from tagportal.profiles import services as profile_services
from tagportal.profiles.choices import HASHED_ONLY_TYPES, IdentityType, LookupEndpoint
from tagportal.profiles.models import MAX_ONEID
from tagportal.usage import services as usage

from .. import partitioning, realtime, sampling, services
from ..evaluate import TagSpec
from ..models import RunStatus, TagComputation, TagRun
from ..results import values_for
from .serializers import (
    BatchRequestSerializer,
    BatchResultSerializer,
    ComputeRequestSerializer,
    EventResultSerializer,
    ProfileSerializer,
    RealtimeEventSerializer,
    TagComputationSerializer,
    TagRunSerializer,
)


class ComputationFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="tag__brand__code", label=gettext_lazy("brand code"))
    tag = django_filters.CharFilter(field_name="tag__code", label=gettext_lazy("tag code"))
    drift_flag = django_filters.BooleanFilter()
    is_calculating = django_filters.BooleanFilter()

    class Meta:
        model = TagComputation
        fields = []


class RunFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code", label=gettext_lazy("brand code"))
    tag = django_filters.CharFilter(field_name="tag__code", label=gettext_lazy("tag code"))
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices)
    started_after = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="gte")
    started_before = django_filters.IsoDateTimeFilter(field_name="started_at", lookup_expr="lt")

    class Meta:
        model = TagRun
        fields = []


class TagComputationViewSet(RestrictedReadOnlyViewSet):
    """Each tag's computation state, coverage, distribution and drift."""

    queryset = TagComputation.objects.select_related("tag", "tag__brand").defer("numbers")
    serializer_class = TagComputationSerializer
    filterset_class = ComputationFilterSet
    ordering_fields = ["last_calculated_at", "coverage", "psi"]
    search_fields = ["tag__code", "tag__name"]


class TagRunViewSet(RestrictedReadOnlyViewSet):
    """The history of computations: one row per tag and run."""

    queryset = TagRun.objects.select_related("tag", "brand")
    serializer_class = TagRunSerializer
    filterset_class = RunFilterSet
    ordering_fields = ["started_at", "duration_s", "coverage", "psi"]
    search_fields = ["tag__code", "error"]


def may_run_compute(user, brand: Brand) -> bool:
    """Whether ``user`` may start computations of the brand's tags: the
    ``engine.run_compute`` permission and a grant to change the brand."""
    return user.has_perm("engine.run_compute") and may(user, brand, "change", check_model_permission=False)


class ComputeView(APIView):
    """Request a computation of a brand's published tags (answered at once: it runs in
    the background)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=ComputeRequestSerializer,
        responses={
            202: inline_serializer(
                "ComputeRequested",
                {
                    "brand": serializers.CharField(),
                    "pending_version": serializers.IntegerField(),
                    "tags": serializers.ListField(child=serializers.CharField()),
                    "partitions": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request):
        if not request.user.has_perm("engine.run_compute"):
            raise PermissionDenied(_("You may not start tag computations."))
        payload = ComputeRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        brand = get_object_or_404(Brand.objects.restrict(request.user, "view"), code=data["brand"])
        if not may_run_compute(request.user, brand):
            raise PermissionDenied(_("You may not start computations of this brand's tags."))
        tags = Tag.objects.published().filter(brand=brand)
        if data.get("tags"):
            tags = tags.filter(code__in=data["tags"])
            unknown = sorted(set(data["tags"]) - set(tags.values_list("code", flat=True)))
            if unknown:
                raise ValidationError(
                    {
                        "tags": [
                            _("Not published tags of this brand: %(codes)s.") % {"codes": ", ".join(unknown)}
                        ]
                    }
                )
        tag_ids = list(tags.values_list("pk", flat=True))
        partitions = data["partitions"] or partitioning.partitions_for(brand)
        pending = services.enqueue_compute(brand, tag_ids, partitions=partitions)
        if pending is None:
            raise ValidationError({"brand": [_("The brand has no published tags to compute.")]})
        codes = sorted(
            Tag.objects.filter(pk__in=tag_ids, computation__pending_version=pending).values_list(
                "code", flat=True
            )
        )
        return Response(
            {
                "brand": brand.code,
                "pending_version": pending,
                "tags": codes,
                "partitions": partitions,
            },
            status=status.HTTP_202_ACCEPTED,
        )


def _granted_brand(user, code, action: str = "view") -> Brand:
    """The brand with this code if ``user`` holds a grant for ``action`` on it (through
    the brand or its business line), else 404: another brand reads as missing."""
    if not code or not isinstance(code, str):
        raise ValidationError({"brand": [_("Required: the brand code.")]})
    brand = Brand.objects.filter(code=code).restrict(user, action, check_model_permission=False).first()
    if brand is None:
        raise NotFound(_("No such brand."))
    return brand


def _check_may_read(user) -> None:
    if not user.has_perm("catalog.view_tag"):
        raise PermissionDenied(_("You may not read tag values."))


def _visible_tags(user, brand: Brand) -> dict[str, tuple[int, str]]:
    """``{code: (tag id, name)}`` of the brand's tags ``user`` may view."""
    rows = Tag.objects.restrict(user, "view").filter(brand=brand).values_list("code", "pk", "name")
    return {code: (pk, name) for code, pk, name in rows}


_DATETIME = serializers.DateTimeField()


def _tag_list(values: dict, visible: dict, counts: dict) -> list[dict]:
    """One person's tag values as the API shows them (by code), counting each value read."""
    out = []
    for code in sorted(values):
        if code not in visible:
            continue
        tag_id, name = visible[code]
        entry = values[code]
        item = {
            "code": code,
            "name": name,
            "value": entry.get("value"),
            "version": entry.get("version"),
            "computed_at": _DATETIME.to_representation(entry["computed_at"])
            if entry.get("computed_at")
            else None,
        }
        if "bucket" in entry:
            item["bucket"] = entry["bucket"]
        out.append(item)
        counts[tag_id] = counts.get(tag_id, 0) + 1
    return out


LOOKUP_PARAMETERS = [
    OpenApiParameter("brand", OpenApiTypes.STR, required=True, description="brand code"),
    OpenApiParameter("type", OpenApiTypes.STR, enum=IdentityType.values, required=True),
    OpenApiParameter("value", OpenApiTypes.STR, required=True, description="the identifier in clear"),
    OpenApiParameter("app", OpenApiTypes.STR, description="the WeChat appid of an openid"),
]


class EventView(APIView):
    """Send one behaviour event (JSON). It is written at once (idempotent on
    ``client_id``; an identity nobody holds creates a person) and the person's realtime
    tags are re-evaluated in the same transaction: 201 with the person's OneID and the
    tags whose value changed, 200 when the client id was sent before (nothing changes),
    400 with every problem when the event is bad (nothing written). Needs
    ``profiles.add_event`` and a grant to change the brand. Bulk events go through
    ``POST /api/profiles/import/``."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    @extend_schema(
        request=RealtimeEventSerializer, responses={201: EventResultSerializer, 200: EventResultSerializer}
    )
    def post(self, request):
        from tagportal.profiles.models import Event

        user = request.user
        if not user.has_perm("profiles.add_event"):
            raise PermissionDenied(_("You may not send events."))
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError(
                {"non_field_errors": [_("Expected an event: an object with brand, client_id, …")]}
            )
        brand = _granted_brand(user, data.get("brand"))
        if not may_add_into(user, Event, brand):
            raise PermissionDenied(_("You may not send events to the brand “%(brand)s”.") % {"brand": brand})
        checked = RealtimeEventSerializer(data=data)
        checked.is_valid(raise_exception=True)
        ingested = realtime.ingest_event(brand, checked.validated_data, user=user)
        event, customer, changes = ingested
        visible = _visible_tags(user, brand) if user.has_perm("catalog.view_tag") else {}
        body = {
            "brand": brand.code,
            "event": event.pk,
            "client_id": event.client_id,
            "oneid": customer.oneid,
            "created": ingested.created,
            "person_created": ingested.person_created,
            "changes": [c.as_dict() for c in changes if c.code in visible],
            "failed": {code: message for code, message in ingested.failed.items() if code in visible},
        }
        return Response(body, status=status.HTTP_201_CREATED if ingested.created else status.HTTP_200_OK)


class _ProfileReadView(APIView):
    permission_classes = [IsAuthenticated]

    def profile(self, request, brand: Brand, customer, requested: int | None = None) -> Response:
        from tagportal.profiles.models import Identity

        user = request.user
        visible = _visible_tags(user, brand)
        values = values_for(brand, [customer.oneid], codes=list(visible))[customer.oneid]
        counts: dict[int, int] = {}
        body = {"brand": brand.code, "oneid": customer.oneid}
        if requested is not None and requested != customer.oneid:
            body["requested_oneid"] = requested
        if user.has_perm("profiles.view_identity"):
            body["identities"] = [
                {"type": i.type, "app": i.app, "value": i.display_value(user)}
                for i in Identity.objects.filter(customer=customer).order_by("type", "app", "pk")
            ]
        body["tags"] = _tag_list(values, visible, counts)
        usage.record_safely(counts, user.pk)
        return Response(body)


class ProfileView(_ProfileReadView):
    """All tag values of one person of a brand (``?brand=<code>``), with the tag version
    and when it was computed; only tags the caller may view. A OneID merged into another
    person answers that person. Needs ``catalog.view_tag`` and a grant on the brand."""

    @extend_schema(
        parameters=[OpenApiParameter("brand", OpenApiTypes.STR, required=True, description="brand code")],
        responses=ProfileSerializer,
    )
    def get(self, request, oneid: int):
        from tagportal.profiles.models import Customer

        _check_may_read(request.user)
        if oneid > MAX_ONEID:
            raise ValidationError({"oneid": [_("Not a OneID: at most %(max)d.") % {"max": MAX_ONEID}]})
        brand = _granted_brand(request.user, request.query_params.get("brand"))
        customer = Customer.objects.filter(brand=brand, oneid=oneid).first()
        if customer is None:
            raise NotFound(_("No such person in this brand."))
        return self.profile(request, brand, realtime.active_customer(customer), requested=oneid)


class ProfileLookupView(_ProfileReadView):
    """All tag values of the person holding an identity (``type``, ``value`` in clear,
    ``app`` for WeChat openids), compared by its keyed hash. Identity values are masked
    unless the caller may see personal data (phones always). Needs the permission to
    look people up by identity value (403 without it, whatever the value); throttled
    per user and recorded."""

    def get_throttles(self):
        return [*super().get_throttles(), lookups.LookupThrottle()]

    @extend_schema(
        parameters=LOOKUP_PARAMETERS,
        responses={200: ProfileSerializer, 403: OpenApiTypes.OBJECT, 404: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        from tagportal.profiles import services as profile_services
        from tagportal.profiles.models import Customer

        _check_may_read(request.user)
        params = request.query_params
        brand = _granted_brand(request.user, params.get("brand"))
        lookups.check(request.user, LookupEndpoint.PROFILE_LOOKUP, 1, brand=brand)
        customer = profile_services.lookup_customer(
            Customer.objects.filter(brand=brand),
            params.get("type", ""),
            params.get("value", ""),
            params.get("app", ""),
        )
        lookups.record(
            request.user, LookupEndpoint.PROFILE_LOOKUP, 1, found=int(customer is not None), brand=brand
        )
        if customer is None:
            raise NotFound(_("Nobody holds this identity."))
        return self.profile(request, brand, realtime.active_customer(customer))


class ProfileBatchView(APIView):
    """Tag values of up to 1,000 people at once, by ``oneids`` or by ``identities``
    (``[{type, value, app}]``): one result per item, in order, ``found: false`` for
    unknown people. 400 over 1,000 items or for a OneID out of range. By identities it
    needs the permission to look people up by identity value (403 without it, whatever
    the values); such a call is throttled per user (one call, whatever its size) and
    recorded."""

    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser]

    def get_throttles(self):
        throttles = super().get_throttles()
        if isinstance(self.request.data, dict) and "identities" in self.request.data:
            throttles.append(lookups.LookupThrottle())
        return throttles

    @extend_schema(
        request=BatchRequestSerializer,
        responses={200: BatchResultSerializer, 400: OpenApiTypes.OBJECT, 403: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        user = request.user
        _check_may_read(user)
        payload = BatchRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        brand = _granted_brand(user, data["brand"])
        if "oneids" in data:
            active = profile_services.live_oneids(brand, data["oneids"])
            items = [{"requested_oneid": o, "oneid": active.get(o)} for o in data["oneids"]]
        else:
            asked = len(data["identities"])
            lookups.check(user, LookupEndpoint.PROFILE_BATCH, asked, brand=brand)
            items = self.by_identity(brand, data["identities"], user)
            found = sum(item["oneid"] is not None for item in items)
            lookups.record(user, LookupEndpoint.PROFILE_BATCH, asked, found=found, brand=brand)
        visible = _visible_tags(user, brand)
        people = sorted({item["oneid"] for item in items if item["oneid"] is not None})
        values = values_for(brand, people, codes=list(visible)) if people else {}
        counts: dict[int, int] = {}
        results = []
        for item in items:
            oneid = item["oneid"]
            found = oneid is not None
            results.append(
                {**item, "found": found, "tags": _tag_list(values[oneid], visible, counts) if found else []}
            )
        usage.record_safely(counts, user.pk)
        return Response({"brand": brand.code, "count": len(results), "results": results})

    @staticmethod
    def by_identity(brand: Brand, identities: list[dict], user) -> list[dict]:
        """``[{identity, oneid}]`` in order; values are normalised per type and looked up by
        :func:`tagportal.profiles.services.identity_oneids` (a merged person answers the
        person it was merged into)."""
        import pandas as pd

        frame = pd.DataFrame(
            [(i["type"], (i.get("app") or "").strip(), i["value"]) for i in identities],
            columns=["type", "app", "value"],
        )
        errors = {}
        for type_, group in frame.groupby("type", sort=False):
            values, problems = pii.normalise(type_, group["value"])
            for position, problem, value in zip(group.index, problems, values, strict=True):
                if isinstance(problem, str) or not value:
                    errors[position] = {"value": [problem if isinstance(problem, str) else _("Required.")]}
            frame.loc[group.index, "value"] = values.astype(object).to_numpy()
        if errors:
            raise ValidationError({"identities": errors})
        found = {}
        for (type_, app), group in frame.groupby(["type", "app"], sort=False):
            held = profile_services.identity_oneids(brand, type_, app, group["value"].tolist())
            found.update({(type_, app, value): oneid for value, oneid in held.items()})
        show_clear = pii.can_view_pii(user)
        items = []
        for type_, app, value in frame[["type", "app", "value"]].itertuples(index=False):
            shown = value if show_clear and type_ not in HASHED_ONLY_TYPES else pii.mask(type_, value)
            items.append(
                {
                    "identity": {"type": type_, "app": app, "value": shown},
                    "oneid": found.get((type_, app, value)),
                }
            )
        return items


class RuleSampleView(APIView):
    """Try a draft rule on a sample of the brand's people (the first 20,000 by OneID,
    at most 15 seconds) before proposing it: the value distribution (people per value,
    a histogram for number tags) and the coverage. The same body as the rule check; an
    invalid rule answers 400 with ``{path: [messages]}``; nothing is stored."""

    permission_classes = [IsAuthenticated]
    throttle_scope = "estimate"

    @extend_schema(
        request=rules_api.RuleDraftSerializer,
        responses={200: OpenApiTypes.OBJECT, 503: OpenApiTypes.OBJECT},
    )
    def post(self, request):
        payload = rules_api.RuleDraftSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        brand, tag, value_type, rule = rules_api.checked(request, data)
        if not value_type:
            raise ValidationError({"value_type": [_("Say which value type the tag has.")]})
        if rule.definition.get("type") == "manual":
            raise ValidationError(
                {"type": [_("A manual tag's values come from uploaded lists: nothing to try.")]}
            )
        spec = TagSpec(
            code=tag.code if tag is not None else sampling.DRAFT_CODE,
            value_type=value_type,
            definition=rule.definition,
            values=data.get("values") if data.get("values") is not None else (tag.values if tag else None),
        )
        try:
            result = sampling.evaluate_sample(brand, spec)
        except sampling.SampleTooSlow as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        except sampling.SampleFailed as exc:
            raise ValidationError({"definition": [str(exc)]}) from exc
        return Response({**asdict(result), "text": rule.text})
