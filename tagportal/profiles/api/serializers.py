"""Serializers of the profiles API."""

from __future__ import annotations

from django.utils.translation import gettext_lazy
from rest_framework import serializers

from tagportal.catalog.models import Brand
from tagportal.core.api import ScopedRelatedField

from ..choices import ImportKind
from ..models import Customer, Identity, ImportJob, MergeRecord


class IdentitySerializer(serializers.ModelSerializer):
    value = serializers.SerializerMethodField(
        help_text=gettext_lazy("In clear for holders of the PII permission (never for phones), else masked.")
    )

    class Meta:
        model = Identity
        fields = ["id", "type", "app", "value", "masked", "created"]

    def get_value(self, obj) -> str:
        request = self.context.get("request")
        return obj.display_value(request.user if request else None)


class CustomerSerializer(serializers.ModelSerializer):
    brand = serializers.SlugRelatedField(slug_field="code", read_only=True)
    merged_into = serializers.SlugRelatedField(slug_field="oneid", read_only=True, allow_null=True)
    identities = IdentitySerializer(many=True, read_only=True)

    class Meta:
        model = Customer
        fields = [
            "id",
            "brand",
            "oneid",
            "attributes",
            "merged_into",
            "identities",
            "created",
            "last_updated",
        ]


class MergeRecordSerializer(serializers.ModelSerializer):
    brand = serializers.SlugRelatedField(slug_field="code", read_only=True)
    undone_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = MergeRecord
        fields = [
            "id", "brand", "kept_oneid", "merged_oneid", "rule", "reason", "identities_moved", "events_moved",
            "orders_moved", "import_job", "created", "undone_at", "undone_by", "undo_reason",
        ]  # fmt: skip


class SplitSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ImportJobSerializer(serializers.ModelSerializer):
    brand = serializers.SlugRelatedField(slug_field="code", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ImportJob
        fields = [
            "id", "brand", "kind", "file_name", "status", "progress", "stage", "rows_total", "rows_ok",
            "rows_skipped", "rows_bad", "errors", "created_counts", "message", "created_by", "created",
            "started_at", "finished_at",
        ]  # fmt: skip


class ImportRequestSerializer(serializers.Serializer):
    brand = ScopedRelatedField(
        slug_field="code", queryset=Brand.objects.all(), help_text=gettext_lazy("brand code")
    )
    kind = serializers.ChoiceField(choices=ImportKind.choices)
    file = serializers.FileField(help_text=gettext_lazy("A CSV (UTF-8 or GB18030) or Parquet file."))


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text=gettext_lazy("row number in the file (the header is row 1)"))
    column = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class ImportRefusedSerializer(serializers.Serializer):
    """A file refused in the request (too big, wrong format or header, too many rows):
    nothing was stored."""

    file = serializers.ListField(child=serializers.CharField())
    errors = RowErrorSerializer(many=True)
