"""Serializers of the activation API. Secrets are write-only: a write gives
``{"name": "value"}`` (a blank value keeps the stored one), a read answers only
``secrets_set``, the names of those that are set."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy
from rest_framework import serializers

from tagportal.catalog.models import Brand
from tagportal.core.api import ScopedRelatedField, ValidatedModelSerializer

from ..kinds import SettingsRefused, check_secrets
from ..models import ChannelAccount


class ChannelAccountSerializer(ValidatedModelSerializer):
    brand = ScopedRelatedField(
        slug_field="code", queryset=Brand.objects.all(), help_text=gettext_lazy("brand code")
    )
    secrets = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        write_only=True,
        required=False,
        help_text=gettext_lazy(
            "The kind's secrets by name; never answered back. A blank value keeps the stored one."
        ),
    )
    secrets_set = serializers.ListField(child=serializers.CharField(), read_only=True)
    created_by = serializers.StringRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = ChannelAccount
        fields = [
            "id",
            "brand",
            "kind",
            "name",
            "settings",
            "secrets",
            "secrets_set",
            "is_active",
            "created_by",
            "created",
            "last_updated",
        ]
        read_only_fields = ["created", "last_updated"]

    def validate(self, attrs):
        given = attrs.pop("secrets", None)
        if given is not None:
            kind = attrs.get("kind") or getattr(self.instance, "kind", "")
            try:
                check_secrets(kind, given)
            except SettingsRefused as exc:
                raise DjangoValidationError({"secrets": str(exc)}) from exc
            holder = ChannelAccount(secrets=self.instance.secrets if self.instance else "")
            holder.merge_secrets(given)
            attrs["secrets"] = holder.secrets
        return super().validate(attrs)


class ChannelAccountUpdateSerializer(ChannelAccountSerializer):
    """The brand and the kind of an account never change."""

    brand = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta(ChannelAccountSerializer.Meta):
        read_only_fields = ["kind", "created", "last_updated"]


class ConnectionCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    code = serializers.JSONField(allow_null=True)
    message = serializers.CharField(allow_blank=True)


def receipts_body(raw: bytes):
    """The JSON of a receipts request (``ValueError`` if it is not JSON, or nested past
    what the parser takes)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
