"""Serializers of the audiences API."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from tagportal.catalog.models import Brand
from tagportal.core.api import ScopedRelatedField

from .. import services
from ..choices import AudienceStatus
from ..models import Audience, AudienceSnapshot

EXPRESSION_HELP = gettext_lazy(
    "The JSON condition tree ({all|any: [...]}, {not: ...}, {tag, op, value}) or its text form "
    '(@code = "value" and not @other >= 3).'
)


class StalePinSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    pinned = serializers.IntegerField(allow_null=True)
    current = serializers.IntegerField()


class AudienceSerializer(serializers.ModelSerializer):
    brand = serializers.CharField(source="brand.code", read_only=True)
    business_line = serializers.CharField(source="business_line.code", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True, default=None, allow_null=True)
    tags = serializers.SlugRelatedField(slug_field="code", many=True, read_only=True)
    share = serializers.FloatField(read_only=True, allow_null=True)
    repin_requested_by = serializers.CharField(
        source="repin_requested_by.username", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Audience
        fields = [
            "id",
            "name",
            "description",
            "brand",
            "business_line",
            "kind",
            "status",
            "owner",
            "expression",
            "expression_text",
            "tags",
            "pinned_versions",
            "is_live",
            "repin_requested_by",
            "repin_requested_at",
            "refresh_on_recompute",
            "refresh_every_hours",
            "seed",
            "model_params",
            "model_metrics",
            "size",
            "population",
            "share",
            *Audience.STATE_FIELDS,
            "created",
            "last_updated",
        ]
        read_only_fields = fields


class AudienceDetailSerializer(AudienceSerializer):
    stale_pins = serializers.SerializerMethodField(
        help_text=gettext_lazy("Tags with a newer published version or result than the one pinned.")
    )

    class Meta(AudienceSerializer.Meta):
        fields = [*AudienceSerializer.Meta.fields, "stale_pins"]
        read_only_fields = fields

    @extend_schema_field(StalePinSerializer(many=True))
    def get_stale_pins(self, audience) -> list[dict]:
        return services.stale_pins(audience)


class AudienceWriteSerializer(serializers.Serializer):
    """What an audience is made of when it is created or edited."""

    name = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    expression = serializers.JSONField(help_text=EXPRESSION_HELP)
    refresh_on_recompute = serializers.BooleanField(
        required=False,
        default=True,
        help_text=gettext_lazy("Refresh when a tag it uses is recomputed."),
    )
    refresh_every_hours = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text=gettext_lazy("Refresh on a schedule every this many hours (empty: no scheduled refresh)."),
    )
    status = serializers.ChoiceField(
        choices=AudienceStatus.choices,
        required=False,
        default=AudienceStatus.ACTIVE,
        help_text=gettext_lazy("draft or active (deleting an audience archives it)"),
    )


class AudienceCreateSerializer(AudienceWriteSerializer):
    brand = ScopedRelatedField(
        slug_field="code", queryset=Brand.objects.all(), help_text=gettext_lazy("brand code")
    )


class AudienceUpdateSerializer(AudienceWriteSerializer):
    """Every field is optional; the brand and the kind never change."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


class EstimateRequestSerializer(serializers.Serializer):
    brand = serializers.CharField(help_text=gettext_lazy("brand code"))
    expression = serializers.JSONField(help_text=EXPRESSION_HELP)


class EstimateSerializer(serializers.Serializer):
    size = serializers.IntegerField()
    population = serializers.IntegerField()
    share = serializers.FloatField()
    expression = serializers.JSONField()
    text = serializers.CharField()
    tag_versions = serializers.DictField(child=serializers.IntegerField(allow_null=True))
    took_ms = serializers.FloatField()


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = AudienceSnapshot
        fields = [
            "number",
            "taken_at",
            "trigger",
            "size",
            "population",
            "joined",
            "left",
            "tag_versions",
            "expression",
            "duration_ms",
        ]
        read_only_fields = fields


class DiffSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    against = serializers.IntegerField(allow_null=True)
    joined = serializers.IntegerField()
    left = serializers.IntegerField()
    joined_oneids = serializers.ListField(child=serializers.IntegerField())
    left_oneids = serializers.ListField(child=serializers.IntegerField())
    limit = serializers.IntegerField()


class LookalikeRequestSerializer(serializers.Serializer):
    size = serializers.IntegerField(
        required=False, min_value=1, help_text=gettext_lazy("How many people to add (or give a threshold).")
    )
    threshold = serializers.FloatField(
        required=False, help_text=gettext_lazy("Everyone scoring at least this (between 0 and 1).")
    )
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)

    def validate(self, attrs):
        if ("size" in attrs) == ("threshold" in attrs):
            raise ValidationError(
                {"size": [_("Give either the number of people to add or a score threshold, not both.")]}
            )
        return attrs
