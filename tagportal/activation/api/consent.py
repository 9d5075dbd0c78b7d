"""REST API of consent and suppression, scoped by brand like the channel accounts
(another brand's row answers 404). Operators read, stewards write.

- ``consents/``: list, detail, and ``POST`` to set a person's state on a channel (or
  ``all``): the row of (brand, OneID, channel) is created (201) or updated (200).
- ``suppressions/``: list, detail, ``POST`` and ``DELETE``. A phone is given in clear
  (write-only) and kept only as its keyed hash and mask; no answer carries a number.
"""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from tagportal.catalog.models import Brand
from tagportal.core.api import RestrictedViewSetMixin, ScopedRelatedField
from tagportal.core.filters import FilterSet
from tagportal.core.permissions import may_add_into
from tagportal.profiles import pii

from .. import vault
from ..models import (
    Consent,
    ConsentChannel,
    ConsentSource,
    ConsentState,
    ContactEntry,
    Suppression,
    SuppressionKey,
)


class ConsentSerializer(serializers.ModelSerializer):
    brand = ScopedRelatedField(
        slug_field="code", queryset=Brand.objects.all(), help_text=gettext_lazy("brand code")
    )
    oneid = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    source = serializers.ChoiceField(choices=ConsentSource.choices, default=ConsentSource.API)

    class Meta:
        model = Consent
        fields = ["id", "brand", "oneid", "channel", "state", "source", "at"]
        read_only_fields = ["at"]
        validators = []  # (brand, oneid, channel) is an upsert, not a duplicate


class SuppressionSerializer(serializers.ModelSerializer):
    brand = ScopedRelatedField(
        slug_field="code", queryset=Brand.objects.all(), help_text=gettext_lazy("brand code")
    )
    value = serializers.CharField(
        write_only=True,
        max_length=128,
        help_text=gettext_lazy("The phone number, openid or OneID to suppress; a phone is kept only hashed."),
    )
    created_by = serializers.StringRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = Suppression
        fields = ["id", "brand", "key_type", "value", "masked", "reason", "until", "created_by", "created"]
        read_only_fields = ["masked", "created"]
        validators = []

    def validate(self, attrs):
        key_type, value = attrs["key_type"], attrs.pop("value").strip()
        if key_type == SuppressionKey.PHONE:
            try:
                normalised = vault.normalise_phone(value)
            except vault.ContactRefused as exc:
                raise serializers.ValidationError({"value": str(exc)}) from exc
            attrs["key"] = vault.phone_hash(normalised)
            attrs["masked"] = pii.mask("phone", normalised)
        elif key_type == SuppressionKey.ONEID:
            if not value.isdigit() or not 0 < int(value) < 2**63:
                raise serializers.ValidationError({"value": _("The OneID must be a positive whole number.")})
            attrs["key"] = attrs["masked"] = str(int(value))
        else:
            if not value or any(ord(c) < 32 for c in value):
                raise serializers.ValidationError({"value": _("Not a valid openid.")})
            attrs["key"], attrs["masked"] = value, pii.mask("wechat_openid", value)
        if Suppression.objects.filter(brand=attrs["brand"], key_type=key_type, key=attrs["key"]).exists():
            raise serializers.ValidationError({"value": _("This value is already suppressed for the brand.")})
        return attrs


class ConsentFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code", label=gettext_lazy("brand code"))
    oneid = django_filters.NumberFilter()
    channel = django_filters.ChoiceFilter(choices=ConsentChannel.choices)
    state = django_filters.ChoiceFilter(choices=ConsentState.choices)

    class Meta:
        model = Consent
        fields = []


class SuppressionFilterSet(FilterSet):
    brand = django_filters.CharFilter(field_name="brand__code", label=gettext_lazy("brand code"))
    key_type = django_filters.ChoiceFilter(choices=SuppressionKey.choices)

    class Meta:
        model = Suppression
        fields = []


def _check_brand(user, model, brand):
    if not may_add_into(user, model, brand):
        raise PermissionDenied(
            _("You may not change the consent of the brand “%(brand)s”.") % {"brand": brand}
        )


class ConsentViewSet(
    RestrictedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    GenericViewSet,
):
    """People's consent per brand and channel. ``POST`` sets it (201 new, 200 changed)."""

    queryset = Consent.objects.select_related("brand")
    serializer_class = ConsentSerializer
    filterset_class = ConsentFilterSet
    ordering_fields = ["oneid", "channel", "at"]
    ordering = ["brand__code", "oneid", "channel", "pk"]

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _check_brand(request.user, Consent, data["brand"])
        obj, created = Consent.objects.update_or_create(
            brand=data["brand"],
            oneid=data["oneid"],
            channel=data["channel"],
            defaults={"state": data["state"], "source": data["source"]},
        )
        code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(self.get_serializer(obj).data, status=code)


class SuppressionViewSet(
    RestrictedViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    GenericViewSet,
):
    """The brands' suppression lists: nobody matching is contacted on any channel."""

    queryset = Suppression.objects.select_related("brand", "created_by")
    serializer_class = SuppressionSerializer
    filterset_class = SuppressionFilterSet
    ordering_fields = ["created", "until"]
    ordering = ["-created", "-pk"]

    def perform_create(self, serializer):
        _check_brand(self.request.user, Suppression, serializer.validated_data["brand"])
        serializer.save(created_by=self.request.user)


class VaultImportSerializer(serializers.Serializer):
    brand = ScopedRelatedField(
        slug_field="code", queryset=Brand.objects.all(), help_text=gettext_lazy("brand code")
    )
    file = serializers.FileField(help_text=gettext_lazy("A CSV with the header oneid,phone."))


class VaultImportResultSerializer(serializers.Serializer):
    stored = serializers.IntegerField()
    unmatched = serializers.IntegerField(
        help_text=gettext_lazy("Numbers no person of the brand holds (phones-only files).")
    )
    unmatched_rows = serializers.ListField(child=serializers.IntegerField())


class VaultImportView(APIView):
    """Phone numbers into the brand's contact vault: a CSV ``oneid,phone``, or ``phone``
    alone (each number to the person holding it: an identity lookup, needing that
    permission; numbers nobody holds are counted, not stored); every row is stored or none
    (400 with each bad row). Stewards and admins only; 409 without a vault.
    The numbers are never answered back."""

    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": VaultImportSerializer},
        responses={
            200: VaultImportResultSerializer,
            400: OpenApiResponse(description=gettext_lazy("Bad rows; nothing was stored.")),
            409: OpenApiResponse(description=gettext_lazy("The contact vault is not configured.")),
        },
    )
    def post(self, request):
        serializer = VaultImportSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        brand = serializer.validated_data["brand"]
        if not may_add_into(request.user, ContactEntry, brand):
            raise PermissionDenied(
                _("You may not import contact data into the brand “%(brand)s”.") % {"brand": brand}
            )
        if not vault.enabled():
            return Response(
                {"detail": _("The contact vault is not configured (TAGPORTAL_VAULT_KEYS is empty).")},
                status=status.HTTP_409_CONFLICT,
            )
        try:
            done = vault.import_rows(
                brand, vault.read_import(serializer.validated_data["file"]), user=request.user
            )
        except vault.ImportRefused as exc:
            return Response({"detail": _("Nothing was stored."), "errors": exc.errors}, status=400)
        return Response(
            {"stored": done.stored, "unmatched": done.unmatched, "unmatched_rows": done.unmatched_rows[:1000]}
        )
