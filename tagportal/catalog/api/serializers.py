"""Serializers of the catalog API."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _
from rest_framework import serializers

from tagportal.core.api import ScopedRelatedField, ValidatedModelSerializer

from .. import services
from ..choices import RefreshMode, TagKind, TagStatus, ValueType
from ..models import Brand, BusinessLine, Category, NamingRule, Region, Tag, TagVersion


class BusinessLineSerializer(ValidatedModelSerializer):
    class Meta:
        model = BusinessLine
        fields = ["id", "code", "name", "name_en", "description", "is_active", "created", "last_updated"]


class BrandSerializer(ValidatedModelSerializer):
    business_line = ScopedRelatedField(slug_field="code", queryset=BusinessLine.objects.all())

    class Meta:
        model = Brand
        fields = [
            "id",
            "code",
            "name",
            "name_en",
            "description",
            "business_line",
            "is_active",
            "created",
            "last_updated",
        ]


class RegionSerializer(ValidatedModelSerializer):
    parent = serializers.SlugRelatedField(
        slug_field="code", queryset=Region.objects.all(), allow_null=True, required=False
    )
    path_name = serializers.CharField(read_only=True)

    class Meta:
        model = Region
        fields = ["id", "code", "name", "name_en", "level", "parent", "path_name"]


class NamingRuleSerializer(ValidatedModelSerializer):
    class Meta:
        model = NamingRule
        fields = ["id", "name", "description", "pattern", "min_length", "max_length", "example_name"]


def _category_path(serializer, category_id) -> str:
    """Category paths from one query per response, however deep the tree is."""
    root = serializer.parent.context if serializer.parent is not None else serializer.context
    if "_category_paths" not in root:
        root["_category_paths"] = Category.path_names()
    return root["_category_paths"].get(category_id, "")


class CategorySerializer(ValidatedModelSerializer):
    path_name = serializers.SerializerMethodField()

    def get_path_name(self, obj) -> str:
        return _category_path(self, obj.pk)

    naming_rule = serializers.PrimaryKeyRelatedField(
        queryset=NamingRule.objects.all(), allow_null=True, required=False
    )

    class Meta:
        model = Category
        fields = [
            "id",
            "code",
            "name",
            "name_en",
            "description",
            "parent",
            "path_name",
            "naming_rule",
            "order",
        ]


class TagValueSerializer(serializers.Serializer):
    code = serializers.CharField()
    label = serializers.CharField()
    label_en = serializers.CharField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)
    min = serializers.FloatField(required=False, allow_null=True)
    max = serializers.FloatField(required=False, allow_null=True)


class TagSerializer(serializers.ModelSerializer):
    brand = ScopedRelatedField(slug_field="code", queryset=Brand.objects.all())
    business_line = serializers.SlugRelatedField(slug_field="code", read_only=True)
    category = serializers.PrimaryKeyRelatedField(queryset=Category.objects.all())
    category_path = serializers.SerializerMethodField()
    regions = serializers.SlugRelatedField(
        slug_field="code", queryset=Region.objects.all(), many=True, required=False
    )
    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        allow_null=True,
    )
    code = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text=_("Leave empty to have it suggested from the Chinese name."),
    )
    values = serializers.JSONField(required=False, help_text=_("[{code, label, label_en, min, max}]"))
    definition = serializers.JSONField(required=False, help_text=_("A rule document."))
    kind = serializers.ChoiceField(choices=TagKind.choices)
    value_type = serializers.ChoiceField(choices=ValueType.choices)
    refresh_mode = serializers.ChoiceField(choices=RefreshMode.choices, required=False)
    status = serializers.ChoiceField(choices=TagStatus.choices, read_only=True)

    class Meta:
        model = Tag
        fields = [
            "id", "code", "name", "name_en", "description", "category", "category_path", "business_line",
            "brand", "regions", "owner", "kind", "value_type", "values", "unit", "refresh_mode", "schedule",
            "definition", "status", "published_version", "template", "created", "last_updated",
        ]  # fmt: skip
        read_only_fields = ["published_version", "template", "created", "last_updated"]
        validators = []  # uniqueness is checked by the model (full_clean) with a clear message

    def get_category_path(self, obj) -> str:
        return _category_path(self, obj.category_id)

    def create(self, validated_data):
        regions = validated_data.pop("regions", [])
        return services.create_tag(
            self.context["request"].user, regions=regions, reason=_("Created via the API"), **validated_data
        )

    def update(self, instance, validated_data):
        regions = validated_data.pop("regions", None)
        if validated_data.get("code", None) == "":
            validated_data.pop("code")
        return services.update_tag(
            self.context["request"].user,
            instance,
            regions=regions,
            reason=_("Edited via the API"),
            **validated_data,
        )


class TagVersionSerializer(serializers.ModelSerializer):
    tag = serializers.PrimaryKeyRelatedField(read_only=True)
    tag_code = serializers.CharField(source="tag.code", read_only=True)
    published_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = TagVersion
        fields = ["id", "tag", "tag_code", "version", "snapshot", "note", "published_at", "published_by"]


class HistoryRecordSerializer(serializers.Serializer):
    history_id = serializers.IntegerField()
    history_date = serializers.DateTimeField()
    history_type = serializers.CharField()
    history_user = serializers.CharField(allow_null=True)
    change_reason = serializers.CharField(allow_null=True)
    changed_fields = serializers.ListField(child=serializers.CharField())


class FieldChangeSerializer(serializers.Serializer):
    field = serializers.CharField()
    label = serializers.CharField()
    old = serializers.CharField()
    new = serializers.CharField()
    changed = serializers.BooleanField()
    lines = serializers.ListField(child=serializers.DictField(), required=False)


class TemplateSerializer(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    name_en = serializers.CharField()
    version = serializers.IntegerField()
    tags = serializers.IntegerField()


class ApplyTemplateSerializer(serializers.Serializer):
    brand = serializers.CharField(help_text=_("brand code"))
