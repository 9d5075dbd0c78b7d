"""Serializers of the model registry's API. A model's parameters are validated by its
kind's configuration (a 400 naming the problem); a run never carries its artefact's
bytes, only their SHA-256."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from tagportal.catalog.models import Brand
from tagportal.core.api import ScopedRelatedField, ValidatedModelSerializer

from .. import services
from ..byom import ONEID
from ..choices import ModelKind, ModelRunStatus
from ..models import ModelOutput, ModelRun, PredictiveModel
from ..scoring_contract import ScoringRequestSerializer, ScoringResponseSerializer


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
    secret = serializers.CharField(
        write_only=True,
        required=False,
        trim_whitespace=False,
        min_length=services.SECRET_MIN_LENGTH,
        max_length=services.SECRET_MAX_LENGTH,
        help_text=gettext_lazy(
            "A scoring endpoint's HMAC secret (write only: stored encrypted, never shown back)."
        ),
    )
    secret_set = serializers.SerializerMethodField(
        help_text=gettext_lazy("Whether a scoring endpoint's secret is set.")
    )

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
            "secret",
            "secret_set",
            "outputs",
            "created_by",
            "created",
            "last_updated",
        ]
        read_only_fields = ["created", "last_updated"]

    def get_secret_set(self, obj) -> bool:
        return obj.kind == ModelKind.ENDPOINT and services.has_endpoint_secret(obj)

    def validate(self, attrs):
        attrs = super().validate(attrs)
        kind = attrs.get("kind", getattr(self.instance, "kind", None))
        if "secret" in attrs and kind != ModelKind.ENDPOINT:
            raise serializers.ValidationError({"secret": _("Only a scoring endpoint model has a secret.")})
        return attrs

    def _user(self):
        request = self.context.get("request")
        return getattr(request, "user", None)

    def create(self, validated_data):
        secret = validated_data.pop("secret", None)
        with transaction.atomic():
            model = super().create(validated_data)
            if secret is not None:
                services.set_endpoint_secret(model, secret, user=self._user())
        return model

    def update(self, instance, validated_data):
        secret = validated_data.pop("secret", None)
        with transaction.atomic():
            model = super().update(instance, validated_data)
            if secret is not None:
                services.set_endpoint_secret(model, secret, user=self._user())
        return model


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


class ScoreFileUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text=gettext_lazy(
            "A CSV (UTF-8 or GB18030) or Parquet file of two columns: the id column and score."
        )
    )
    id_column = serializers.CharField(
        required=False,
        default=ONEID,
        help_text=gettext_lazy(
            "oneid (default) or an identity type (phone, wechat_unionid, …): a file keyed by an "
            "identity type needs the permission to look people up by identity value."
        ),
    )
    app = serializers.CharField(
        required=False, default="", allow_blank=True, help_text=gettext_lazy("the appid of a file of openids")
    )


class ScoreRowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text=gettext_lazy("spreadsheet row: the header is row 1"))
    column = serializers.CharField(allow_blank=True)
    message = serializers.CharField()


class ScoreUploadSerializer(serializers.Serializer):
    """The run an upload gave: published (the scores are written) or failed (nothing is
    written; ``errors`` lists the first bad rows, ``report.bad_rows`` counts them all)."""

    run = serializers.IntegerField(help_text=gettext_lazy("the model run recording the upload"))
    status = serializers.ChoiceField(choices=ModelRunStatus.choices)
    people_scored = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_blank=True)
    report = serializers.DictField(
        help_text=gettext_lazy(
            "rows, id_column, identity_values, matched, unmatched, unmatched_rows, bad_rows, summary"
        )
    )
    errors = ScoreRowErrorSerializer(many=True)

    @staticmethod
    def of(run: ModelRun) -> dict:
        metrics = run.metrics or {}
        return {
            "run": run.pk,
            "status": run.status,
            "people_scored": run.people_scored,
            "error": run.error,
            "report": metrics.get("upload") or {},
            "errors": metrics.get("errors") or [],
        }


class EndpointTestSerializer(serializers.Serializer):
    """What a connection test of a scoring endpoint gave. ``request`` is the signed body
    TagPortal posted (the scoring contract's request: one made-up person, OneID 1, every
    feature null) and ``response`` what the endpoint answered when it was JSON (the
    contract's response when the endpoint keeps it)."""

    ok = serializers.BooleanField(help_text=gettext_lazy("the endpoint answered the contract's response"))
    status = serializers.IntegerField(allow_null=True, help_text=gettext_lazy("the HTTP status answered"))
    error = serializers.CharField(
        allow_null=True,
        help_text=gettext_lazy(
            "unauthorized, rate_limited, server_error, refused, malformed, timeout, connection, "
            "retries_exhausted or unscored; null when ok"
        ),
    )
    seconds = serializers.FloatField()
    endpoint = serializers.CharField(help_text=gettext_lazy("scheme, host and path of the URL"))
    request = ScoringRequestSerializer()
    response = ScoringResponseSerializer(allow_null=True)
