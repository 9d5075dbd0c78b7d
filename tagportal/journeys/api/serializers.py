"""Serializers of the journeys API: a journey with its versions' states, a version with
its graph, and the bodies of the lifecycle actions."""

from __future__ import annotations

from django.utils.translation import gettext_lazy
from rest_framework import serializers

from tagportal.catalog.models import Brand
from tagportal.core.api import ScopedRelatedField

from ..models import Journey, JourneyVersion


class JourneyVersionSerializer(serializers.ModelSerializer):
    proposed_by = serializers.StringRelatedField(read_only=True, allow_null=True)
    approved_by = serializers.StringRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = JourneyVersion
        fields = [
            "id",
            "number",
            "state",
            "graph",
            "proposed_by",
            "proposed_at",
            "approved_by",
            "approved_at",
            "review_note",
            "created",
        ]
        read_only_fields = fields


class JourneySerializer(serializers.ModelSerializer):
    brand = ScopedRelatedField(
        slug_field="code", queryset=Brand.objects.all(), help_text=gettext_lazy("brand code")
    )
    owner = serializers.StringRelatedField(read_only=True, allow_null=True)
    live_version = serializers.SerializerMethodField()
    pending_version = serializers.SerializerMethodField()

    class Meta:
        model = Journey
        fields = [
            "id",
            "brand",
            "name",
            "description",
            "owner",
            "status",
            "live_version",
            "pending_version",
            "created",
            "updated",
        ]
        read_only_fields = ["owner", "status", "created", "updated"]

    def get_live_version(self, journey) -> int | None:
        """The number of the version new people enter."""
        return journey.live_version.number if journey.live_version_id else None

    def get_pending_version(self, journey) -> int | None:
        """The number of the version waiting for review, if any."""
        pending = [v.number for v in journey.versions.all() if v.state == "pending"]
        return pending[0] if pending else None


class JourneyCreateSerializer(JourneySerializer):
    graph = serializers.JSONField(
        write_only=True, help_text=gettext_lazy("The first version's graph (nodes, edges, goal).")
    )

    class Meta(JourneySerializer.Meta):
        fields = [*JourneySerializer.Meta.fields, "graph"]


class GraphSerializer(serializers.Serializer):
    graph = serializers.JSONField(help_text=gettext_lazy("The journey's graph: nodes, edges and goal."))


class ReviewSerializer(serializers.Serializer):
    note = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text=gettext_lazy("To the proposer; required when rejecting."),
    )
