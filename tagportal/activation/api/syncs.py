"""Audience syncs to a channel's customer tag: list, create (through
:func:`~tagportal.activation.syncs.create_sync`: an unknown audience or account, another
brand's account, a kind without customer tags or an over-long name answer 400), read, and
``POST syncs/{id}/pause/`` and ``resume/``."""

from __future__ import annotations

import django_filters
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from tagportal.audiences.models import Audience
from tagportal.core.api import RestrictedModelViewSet
from tagportal.core.filters import FilterSet

from .. import syncs
from ..models import AudienceSync, ChannelAccount, SyncStatus


class _ScopedPk(serializers.PrimaryKeyRelatedField):
    """A related object by id, looked up only among those the caller may view."""

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        return queryset.restrict(request.user, "view") if request is not None else queryset


class AudienceSyncSerializer(serializers.ModelSerializer):
    audience = _ScopedPk(
        queryset=Audience.objects.all(),
        allow_null=True,  # read: a journey's direct tagging has none; written: required
        help_text=gettext_lazy("audience id"),
    )
    account = _ScopedPk(queryset=ChannelAccount.objects.all(), help_text=gettext_lazy("channel account id"))
    kind = serializers.CharField(source="account.kind", read_only=True)
    created_by = serializers.StringRelatedField(read_only=True, allow_null=True)
    settings = serializers.DictField(
        required=False,
        help_text=gettext_lazy('WeCom: {"userid": the member who tags}; Weimob: {"tag_id": …}.'),
    )

    def validate_audience(self, value):
        if value is None:
            raise ValidationError(_("Choose the audience to sync."))
        return value

    class Meta:
        model = AudienceSync
        fields = [
            "id",
            "audience",
            "account",
            "kind",
            "tag_name",
            "tag_group",
            "settings",
            "platform_tag_id",
            "status",
            "queued_number",
            "synced_number",
            "added",
            "removed",
            "unreachable",
            "rejected",
            "last_error",
            "created_by",
            "created",
            "last_updated",
        ]
        read_only_fields = [
            "platform_tag_id",
            "status",
            "queued_number",
            "synced_number",
            "added",
            "removed",
            "unreachable",
            "rejected",
            "last_error",
            "created",
            "last_updated",
        ]
        # the services check uniqueness and lengths per channel
        validators = []
        extra_kwargs = {"tag_name": {"max_length": None}}


class AudienceSyncFilterSet(FilterSet):
    audience = django_filters.NumberFilter(field_name="audience_id", label=gettext_lazy("audience"))
    account = django_filters.NumberFilter(field_name="account_id", label=gettext_lazy("channel account"))
    status = django_filters.ChoiceFilter(choices=SyncStatus.choices)

    class Meta:
        model = AudienceSync
        fields = []


class AudienceSyncViewSet(RestrictedModelViewSet):
    """An audience kept in step with a customer tag of a channel account."""

    # a journey's direct tagging (no audience) is not an audience sync to list or pause
    queryset = AudienceSync.objects.filter(audience__isnull=False).select_related(
        "audience", "account", "created_by"
    )
    serializer_class = AudienceSyncSerializer
    filterset_class = AudienceSyncFilterSet
    ordering_fields = ["created", "last_updated"]
    ordering = ["-created", "-pk"]
    http_method_names = ["get", "post", "head", "options"]
    action_permissions = {"pause": "change", "resume": "change"}

    def perform_create(self, serializer):
        data = serializer.validated_data
        try:
            sync = syncs.create_sync(
                self.request.user,
                data["audience"],
                data["account"],
                data.get("tag_name", ""),
                tag_group=data.get("tag_group", ""),
                options=data.get("settings") or {},
            )
        except syncs.SyncRefused as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        serializer.instance = sync

    @extend_schema(request=None, responses={200: AudienceSyncSerializer})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        """Stop the sync until resumed."""
        sync = syncs.pause(request.user, self.get_object())
        return Response(self.get_serializer(sync).data)

    @extend_schema(request=None, responses={200: AudienceSyncSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Start the sync again; the snapshots taken meanwhile are queued as one diff."""
        sync = syncs.resume(request.user, self.get_object())
        return Response(self.get_serializer(sync).data, status=status.HTTP_200_OK)
