"""Serializers of the governance API."""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from tagportal.catalog.api.serializers import TagSerializer
from tagportal.catalog.models import Tag
from tagportal.notifications.models import Notification

from .. import impact, services
from ..choices import PROPOSABLE_KINDS, ChangeKind, ReportKind, RequestState
from ..models import ChangeItem, ChangeRequest, Comment, Report
from ..reports import service as report_service


class TagRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "code", "name", "name_en", "status", "published_version"]


class ChangeItemSerializer(serializers.ModelSerializer):
    tag = TagRefSerializer(read_only=True)
    merge_target = TagRefSerializer(read_only=True, allow_null=True)
    produced_version = serializers.IntegerField(
        source="produced_version.version", read_only=True, default=None, allow_null=True
    )
    model_run = serializers.IntegerField(
        source="model_run_id",
        read_only=True,
        allow_null=True,
        help_text=_("kind model_run: the id of the held model run the change publishes"),
    )
    impact = serializers.SerializerMethodField(help_text=_("The cached impact preview of a rule change."))
    stale = serializers.SerializerMethodField(
        help_text=_(
            "Out of date: the request is open and the tag's published version is no longer "
            "the one the change was made on (base_version)."
        )
    )

    class Meta:
        model = ChangeItem
        fields = [
            "id", "kind", "tag", "base_version", "changes", "merge_target", "rollback_to", "diff",
            "dependents", "produced_version", "model_run", "impact", "stale",
        ]  # fmt: skip

    def get_stale(self, obj) -> bool:
        return obj.change_request.state in services.OPEN_STATES and services.item_is_stale(obj)

    def get_impact(self, obj) -> dict | None:
        request = self.context.get("request")
        return impact.for_user(obj.impact, request.user if request else None) if obj.impact else None


class ItemInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[(kind.value, kind.label) for kind in PROPOSABLE_KINDS])
    tag = serializers.IntegerField(required=False, help_text=_("id of the tag (for create: a draft tag)"))
    tag_data = serializers.JSONField(
        required=False, help_text=_("create only: a new draft tag, as for POST /api/catalog/tags/")
    )
    changes = serializers.JSONField(required=False, help_text=_("update only: field → new value"))
    merge_target = serializers.IntegerField(
        required=False, help_text=_("merge only: id of the tag to merge into")
    )
    rollback_to = serializers.IntegerField(
        required=False, min_value=1, help_text=_("update only: version number")
    )


class ChangeRequestSerializer(serializers.ModelSerializer):
    business_line = serializers.SlugRelatedField(slug_field="code", read_only=True)
    brand = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    proposer = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    kind = serializers.CharField(read_only=True)
    items = ChangeItemSerializer(many=True, read_only=True)
    item_input = ItemInputSerializer(many=True, write_only=True, source="items_input")
    submit = serializers.BooleanField(write_only=True, required=False, default=False)
    age_days = serializers.SerializerMethodField()
    stale = serializers.SerializerMethodField(
        help_text=_(
            "Out of date: a version newer than the one the request was made on has been published. "
            "It can no longer be approved, sent back or applied (409); reject or withdraw it."
        )
    )
    current_version = serializers.SerializerMethodField(
        help_text=_(
            "The published version now of the tag the request changes (of its first out-of-date "
            "tag when it changes several); null when there is none."
        )
    )

    class Meta:
        model = ChangeRequest
        fields = [
            "id", "title", "description", "state", "kind", "business_line", "brand", "proposer", "reviewer",
            "decision_reason", "confirm_dependents", "is_bulk", "source_file", "submitted_at", "decided_at",
            "applied_at", "created", "age_days", "stale", "current_version", "items", "item_input", "submit",
            "restructure",
        ]  # fmt: skip
        read_only_fields = [
            "state", "decision_reason", "is_bulk", "source_file", "submitted_at", "decided_at", "applied_at",
            "restructure",
        ]  # fmt: skip
        extra_kwargs = {"title": {"required": False}}

    def get_fields(self):
        fields = super().get_fields()
        fields["items"] = ChangeItemSerializer(many=True, read_only=True)
        return fields

    def _items(self, obj) -> list:
        return sorted(obj.items.all(), key=lambda item: (item.position, item.pk))

    def get_stale(self, obj) -> bool:
        return bool(services.stale_changes(obj, self._items(obj)))

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_current_version(self, obj) -> int | None:
        items = self._items(obj)
        stale = services.stale_changes(obj, items)
        if stale:
            return stale[0].tag.published_version
        versions = {item.tag.published_version for item in items if item.kind != ChangeKind.CREATE}
        if len({item.tag_id for item in items}) == 1 and versions:
            return versions.pop()
        return None

    def get_age_days(self, obj) -> int:
        start = obj.submitted_at or obj.created
        return (timezone.now() - start).days if start else 0

    def to_internal_value(self, data):
        # accept "items" on input too (the natural name); "item_input" stays for the schema
        if hasattr(data, "get") and "items" in data and "item_input" not in data:
            data = {**data, "item_input": data["items"]}
        return super().to_internal_value(data)

    def _specs(self, raw_items) -> list[services.ItemSpec]:
        request = self.context["request"]
        visible = Tag.objects.restrict(request.user, "view")
        specs = []
        for index, raw in enumerate(raw_items):
            kind = raw["kind"]
            if raw.get("tag_data") is not None:
                if kind != ChangeKind.CREATE:
                    raise ValidationError({f"items[{index}].tag_data": _("Only a create carries a new tag.")})
                serializer = TagSerializer(data=raw["tag_data"], context=self.context)
                if not serializer.is_valid():
                    raise ValidationError({f"items[{index}].tag_data": serializer.errors})
                tag = serializer.save()
            else:
                if raw.get("tag") is None:
                    raise ValidationError({f"items[{index}].tag": _("Say which tag.")})
                tag = visible.filter(pk=raw["tag"]).first()
                if tag is None:
                    raise ValidationError(
                        {f"items[{index}].tag": _("Unknown tag %(id)s.") % {"id": raw["tag"]}}
                    )
            target = None
            if raw.get("merge_target") is not None:
                target = visible.filter(pk=raw["merge_target"]).first()
                if target is None:
                    raise ValidationError({f"items[{index}].merge_target": _("Unknown tag.")})
            specs.append(
                services.ItemSpec(
                    kind=kind,
                    tag=tag,
                    changes=raw.get("changes") or {},
                    merge_target=target,
                    rollback_to=raw.get("rollback_to"),
                )
            )
        return specs

    @transaction.atomic
    def create(self, validated_data):
        raw_items = validated_data.pop("items_input", [])
        return services.propose(
            self.context["request"].user,
            self._specs(raw_items),
            title=validated_data.get("title", ""),
            description=validated_data.get("description", ""),
            submit_now=validated_data.get("submit", False),
            confirm_dependents=validated_data.get("confirm_dependents", False),
        )

    @transaction.atomic
    def update(self, instance, validated_data):
        user = self.context["request"].user
        raw_items = validated_data.pop("items_input", None)
        if raw_items is not None:
            instance = services.replace_items(
                user, instance, self._specs(raw_items), validated_data.get("title")
            )
        elif instance.proposer_id != user.pk:
            raise PermissionDenied(_("Only the proposer edits a change request."))
        elif instance.state not in (RequestState.DRAFT, RequestState.CHANGES_REQUESTED):
            raise services.InvalidTransition(
                _("Only drafts and requests sent back for changes can be edited."), state=instance.state
            )
        for name in ("title", "description", "confirm_dependents"):
            if name in validated_data:
                setattr(instance, name, validated_data[name])
        instance.save()
        if validated_data.get("submit"):
            services.submit(user, instance)
        return instance


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Comment
        fields = ["id", "author", "text", "created"]


class DecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    apply = serializers.BooleanField(required=False, default=False)


class MarkReadSerializer(serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),
        required=False,
        help_text=_("ids of the messages; all of yours when left out"),
    )


class NotificationSerializer(serializers.ModelSerializer):
    change_request = serializers.SerializerMethodField(
        help_text=_("The change request the message is about, if any.")
    )

    class Meta:
        model = Notification
        fields = ["id", "subject", "body", "url", "change_request", "created", "read_at"]

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_change_request(self, note) -> int | None:
        about = ContentType.objects.get_for_model(ChangeRequest)
        return note.topic_id if note.topic_type_id == about.pk else None


class ReportSerializer(serializers.ModelSerializer):
    """A report; ``row_count`` counts the findings the caller may see."""

    business_line = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    brand = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    region = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    requested_by = serializers.StringRelatedField(allow_null=True)
    row_count = serializers.SerializerMethodField(help_text=gettext_lazy("findings the caller may see"))

    class Meta:
        model = Report
        fields = [
            "id", "kind", "business_line", "brand", "region", "period_start", "period_end", "params",
            "status", "trigger", "requested_by", "requested_at", "started_at", "finished_at",
            "duration_s", "runs", "row_count", "error",
        ]  # fmt: skip
        read_only_fields = fields

    def _tag_ids(self) -> set[int] | None:
        """The tags the caller may view (``None``: every tag), once per response."""
        context = self.context
        if "visible_tag_ids" not in context:
            request = context.get("request")
            context["visible_tag_ids"] = report_service.visible_tag_ids(getattr(request, "user", None))
        return context["visible_tag_ids"]

    def visible(self, report: Report) -> tuple[dict, list[dict]]:
        """``(meta, rows)`` of the report as the caller may see them, once per report."""
        found = self.context.setdefault("visible_reports", {})
        if report.pk not in found:
            request = self.context.get("request")
            found[report.pk] = report_service.visible_report(
                getattr(request, "user", None), report, self._tag_ids()
            )
        return found[report.pk]

    def get_row_count(self, report) -> int:
        if self._tag_ids() is None:  # the caller sees every finding
            return report.row_count
        return len(self.visible(report)[1])


class ReportDetailSerializer(ReportSerializer):
    """A report with its meta and rows, both limited to what the caller may see."""

    meta = serializers.SerializerMethodField()
    rows = serializers.SerializerMethodField()

    class Meta(ReportSerializer.Meta):
        fields = [*ReportSerializer.Meta.fields, "meta", "rows"]
        read_only_fields = fields

    def get_meta(self, report) -> dict:
        return self.visible(report)[0]

    def get_rows(self, report) -> list[dict]:
        return self.visible(report)[1]


class ReportRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ReportKind.choices)
    period_start = serializers.DateField(required=False, help_text=_("first Beijing day; default by kind"))
    period_end = serializers.DateField(required=False, help_text=_("last Beijing day; default yesterday"))
    business_line = serializers.CharField(required=False, allow_blank=True, help_text=_("business line code"))
    brand = serializers.CharField(required=False, allow_blank=True, help_text=_("brand code"))
    region = serializers.CharField(required=False, allow_blank=True, help_text=_("region code"))


class CleanupSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=[ChangeKind.DEPRECATE, ChangeKind.RETIRE, ChangeKind.MERGE])
    findings = serializers.ListField(
        child=serializers.CharField(),
        allow_empty=False,
        help_text=_("cold-tag report: tag ids; merge report: “a:b:kept” (the tag kept is a or b)"),
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    preview = serializers.BooleanField(required=False, default=False)
