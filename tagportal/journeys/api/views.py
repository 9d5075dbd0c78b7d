"""REST API of journeys: the journeys of the brands the caller reaches (another brand's
answers 404), their versions, and the lifecycle: a new version (``POST versions/``),
``submit``, ``approve`` / ``reject`` (a data steward of the brand who did not propose
the version: four eyes), ``pause``, ``resume``, ``end``. Every state change goes
through :mod:`tagportal.journeys.lifecycle`: a refused one answers 403 (may not), 409
(not in this state) or 400 (a graph with problems, a rejection without a reason)."""

from __future__ import annotations

import django_filters
from django.db.models import Prefetch
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from tagportal.core.api import RestrictedModelViewSet
from tagportal.core.exceptions import Conflict
from tagportal.core.filters import FilterSet

from .. import lifecycle
from ..choices import JourneyStatus
from ..models import Journey, JourneyVersion
from .serializers import (
    GraphSerializer,
    JourneyCreateSerializer,
    JourneySerializer,
    JourneyVersionSerializer,
    ReviewSerializer,
)


class JourneyFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code", label=gettext_lazy("brand code"))
    status = django_filters.ChoiceFilter(choices=JourneyStatus.choices)

    class Meta:
        model = Journey
        fields = []


class JourneyViewSet(RestrictedModelViewSet):
    """Journeys of the brands the caller reaches, with their lifecycle actions."""

    queryset = Journey.objects.select_related("brand", "owner", "live_version").prefetch_related(
        Prefetch("versions", queryset=JourneyVersion.objects.order_by("-number"))
    )
    serializer_class = JourneySerializer
    filterset_class = JourneyFilterSet
    search_fields = ["name"]
    ordering_fields = ["name", "created", "updated"]
    ordering = ["brand__code", "name", "pk"]
    http_method_names = ["get", "post", "patch", "head", "options"]
    action_permissions = {
        "versions": "view",
        "new_version": "change",
        "submit": "change",
        "approve": "view",  # the steward's right is checked by the lifecycle (four eyes)
        "reject": "view",
        "pause": "change",
        "resume": "change",
        "end": "change",
    }

    def get_serializer_class(self):
        if self.action == "create":
            return JourneyCreateSerializer
        return super().get_serializer_class()

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = lifecycle.create(
            self.request.user, data["brand"], data["name"], data["graph"], data.get("description", "")
        )

    def perform_update(self, serializer):
        journey = serializer.instance
        data = serializer.validated_data
        if "brand" in data and data["brand"].pk != journey.brand_id:
            raise Conflict(_("A journey stays in its brand."))
        serializer.instance = lifecycle.rename(
            self.request.user,
            journey,
            data.get("name", journey.name),
            data.get("description", journey.description),
        )

    def _journey(self, journey) -> Response:
        fresh = self.get_queryset().get(pk=journey.pk)
        return Response(JourneySerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses={200: JourneyVersionSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=None)
    def versions(self, request, pk=None):
        """The journey's versions, newest first."""
        journey = self.get_object()
        rows = journey.versions.select_related("proposed_by", "approved_by").order_by("-number")
        return Response(JourneyVersionSerializer(rows, many=True).data)

    @extend_schema(request=GraphSerializer, responses={201: JourneyVersionSerializer})
    @versions.mapping.post
    def new_version(self, request, pk=None):
        """Keep an edited graph: the draft version is rewritten, or a new draft version
        is made after an approved or rejected one (people inside stay on theirs)."""
        journey = self.get_object()
        body = GraphSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = lifecycle.new_version(request.user, journey, body.validated_data["graph"])
        return Response(JourneyVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: JourneyVersionSerializer})
    @action(detail=True, methods=["post"])
    def submit(self, request, pk=None):
        """Send the draft version for a data steward's review."""
        version = lifecycle.submit(request.user, self.get_object())
        return Response(JourneyVersionSerializer(version).data)

    def _pending(self, journey) -> JourneyVersion:
        version = lifecycle.pending_version(journey)
        if version is None:
            raise lifecycle.InvalidTransition(_("No version of this journey is waiting for review."))
        return version

    @extend_schema(request=ReviewSerializer, responses={200: JourneyVersionSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve the version waiting for review: it goes live (four eyes: not by its proposer)."""
        journey = self.get_object()
        body = ReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = lifecycle.approve(request.user, self._pending(journey), body.validated_data.get("note", ""))
        return Response(JourneyVersionSerializer(version).data)

    @extend_schema(request=ReviewSerializer, responses={200: JourneyVersionSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        """Send the version waiting for review back, with the reason (``note``, required)."""
        journey = self.get_object()
        body = ReviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = lifecycle.reject(request.user, self._pending(journey), body.validated_data.get("note", ""))
        return Response(JourneyVersionSerializer(version).data)

    @extend_schema(request=None, responses={200: JourneySerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Stop moving people on and letting new ones in until resumed."""
        return self._journey(lifecycle.pause(request.user, self.get_object()))

    @extend_schema(request=None, responses={200: JourneySerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Run a paused journey again."""
        return self._journey(lifecycle.resume(request.user, self.get_object()))

    @extend_schema(request=None, responses={200: JourneySerializer})
    @action(detail=True, methods=["post"])
    def end(self, request, pk=None):
        """End the journey for good; the people inside leave it."""
        return self._journey(lifecycle.end(request.user, self.get_object()))
