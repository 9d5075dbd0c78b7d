"""Serializers of the lineage API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext as _
from rest_framework import serializers

from tagportal.catalog.models import BusinessLine
from tagportal.core.api import ScopedRelatedField, ValidatedModelSerializer

from ..choices import DataType, SourceKind
from ..models import DataField, DataSource


class DataSourceSerializer(ValidatedModelSerializer):
    business_line = ScopedRelatedField(
        slug_field="code",
        queryset=BusinessLine.objects.all(),
        allow_null=True,
        required=False,
        help_text=_("Business line code; empty (null) for a source shared by all business lines."),
    )
    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        allow_null=True,
    )
    kind = serializers.ChoiceField(choices=SourceKind.choices)
    is_stale = serializers.SerializerMethodField()
    field_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = DataSource
        fields = [
            "id", "code", "name", "name_en", "kind", "description", "owner", "business_line",
            "refresh_sla_hours", "last_loaded_at", "is_active", "is_stale", "field_count", "created",
            "last_updated",
        ]  # fmt: skip
        read_only_fields = ["last_loaded_at", "created", "last_updated"]

    def get_is_stale(self, obj) -> bool:
        now = self.context.setdefault("_now", timezone.now())
        return obj.is_stale(now)


class DataFieldSerializer(ValidatedModelSerializer):
    source = ScopedRelatedField(
        slug_field="code", queryset=DataSource.objects.all(), help_text=_("source code")
    )
    data_type = serializers.ChoiceField(choices=DataType.choices, required=False)
    dependent_tags = serializers.IntegerField(read_only=True, help_text=_("tags reading this field directly"))

    class Meta:
        model = DataField
        fields = [
            "id", "source", "name", "description", "data_type", "maps_to", "dependent_tags", "created",
            "last_updated",
        ]  # fmt: skip
        read_only_fields = ["created", "last_updated"]
        validators = []  # uniqueness is checked by the model (full_clean) with a clear message


class LoadSerializer(serializers.Serializer):
    at = serializers.DateTimeField(required=False, help_text=_("when the load finished (default: now)"))


class InputsWriteSerializer(serializers.Serializer):
    fields = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        default=list,
        help_text=_("Data field ids or “source_code.field_name”."),
    )
    tags = serializers.ListField(
        child=serializers.JSONField(),
        required=False,
        default=list,
        help_text=_("Tag ids or codes (same brand)."),
    )
