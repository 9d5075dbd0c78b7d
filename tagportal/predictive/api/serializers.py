"""Serializers of the model registry's API. A model's parameters are validated by its
kind's configuration (a 400 naming the problem); a run never carries its artefact's
bytes, only their SHA-256."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from tagportal.catalog.models import Brand
from tagportal.core.api import ScopedRelatedField, ValidatedModelSerializer

from ..models import ModelOutput, ModelRun, PredictiveModel


class ModelOutputSerializer(serializers.ModelSerializer):
    tag = serializers.SlugRelatedField(slug_field="code", read_only=True, help_text=gettext_lazy("tag code"))

    class Meta:
        model = ModelOutput
        fields = ["key", "tag"]


class PredictiveModelSerializer(ValidatedModelSerializer):
    brand = ScopedRelatedField(
        slug_field="code", queryset=Brand.objects.all(), help_text=gettext_lazy("brand code")
    )
    outputs = ModelOutputSerializer(many=True, read_only=True)
    created_by = serializers.StringRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = PredictiveModel
        fields = [
            "id",
            "brand",
            "kind",
            "name",
            "parameters",
            "schedule",
            "metric_floor",
            "max_drop",
            "is_active",
            "outputs",
            "created_by",
            "created",
            "last_updated",
        ]
        read_only_fields = ["created", "last_updated"]


class PredictiveModelUpdateSerializer(PredictiveModelSerializer):
    """The brand and the kind of a model never change."""

    brand = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta(PredictiveModelSerializer.Meta):
        read_only_fields = ["kind", "created", "last_updated"]


class ModelRunSerializer(serializers.ModelSerializer):
    model = serializers.PrimaryKeyRelatedField(read_only=True)
    model_name = serializers.CharField(source="model.name", read_only=True)
    brand = serializers.CharField(source="model.brand.code", read_only=True)

    class Meta:
        model = ModelRun
        fields = [
            "id",
            "model",
            "model_name",
            "brand",
            "status",
            "as_of",
            "started_at",
            "finished_at",
            "duration_s",
            "peak_memory_mb",
            "window",
            "features",
            "parameters",
            "metrics",
            "key_metric",
            "charts",
            "artefact_sha256",
            "people_scored",
            "error",
        ]
        read_only_fields = fields


#: The earliest and the latest moment a run may be fitted as of.
EARLIEST = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)
FUTURE_SLACK = dt.timedelta(days=1)


class RunRequestSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField(
        required=False, help_text=gettext_lazy("fit as of this moment; now if left out")
    )

    def validate_as_of(self, value):
        """From 1970 to a day ahead (clocks differ), as event times."""
        if value < EARLIEST:
            raise serializers.ValidationError(_("Before 1970."))
        if value > timezone.now() + FUTURE_SLACK:
            raise serializers.ValidationError(_("In the future."))
        return value
