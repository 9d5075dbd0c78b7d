"""The deliveries of the brands the caller reaches, read-only (filter by send and
state), and ``POST deliveries/{id}/retry/``: a dead or failed delivery queued again
(409 in any other state), for those who may change deliveries (stewards)."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from tagportal.core.api import RestrictedReadOnlyViewSet
from tagportal.core.filters import FilterSet

from .. import deliveries
from ..models import Delivery, DeliveryState


class DeliverySerializer(serializers.ModelSerializer):
    kind = serializers.CharField(source="send.kind", read_only=True)
    brand = serializers.CharField(source="send.brand.code", read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "send",
            "brand",
            "kind",
            "oneid",
            "recipient",
            "idempotency_key",
            "state",
            "attempts",
            "next_attempt_at",
            "last_error_code",
            "last_error",
            "provider_id",
            "created",
            "sent_at",
            "delivered_at",
            "read_at",
            "clicked_at",
            "updated",
        ]
        read_only_fields = fields


class DeliveryFilterSet(FilterSet):
    send = django_filters.NumberFilter(field_name="send_id", label=gettext_lazy("send"))
    state = django_filters.ChoiceFilter(choices=DeliveryState.choices)
    brand = django_filters.CharFilter(field_name="send__brand__code", label=gettext_lazy("brand code"))

    class Meta:
        model = Delivery
        fields = []


class DeliveryViewSet(RestrictedReadOnlyViewSet):
    """One row per (send, person): its state, attempts and last error."""

    queryset = Delivery.objects.select_related("send", "send__brand")
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilterSet
    ordering_fields = ["created", "next_attempt_at", "updated"]
    ordering = ["-pk"]
    action_permissions = {"retry": "change"}

    @extend_schema(
        request=None,
        responses={
            200: DeliverySerializer,
            409: OpenApiResponse(description=gettext_lazy("Only a dead or failed delivery is retried.")),
        },
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        """Queue a dead or failed delivery again now, its attempts reset."""
        delivery = self.get_object()
        try:
            deliveries.retry(delivery)
        except deliveries.NotRetryable as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(delivery).data)
