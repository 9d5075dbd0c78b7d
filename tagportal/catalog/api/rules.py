"""The rule editor's API: the language it offers (``language``) and the check of a draft
rule (``check``): a document or a text in, its canonical document and text out, or every
problem at its path (a 400). Brand-scoped; nothing is saved."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from tagportal.rules import language
from tagportal.rules.definitions import RuleValidationError
from tagportal.rules.syntax import RuleSyntaxError

from ..choices import TagKind, ValueType
from ..models import Brand, Tag
from ..rule_checks import MAX_TEXT, CheckedRule, check_rule

#: Most tags of a brand listed for the pickers of a composite rule.
MAX_BRAND_TAGS = 2000


class RuleDraftSerializer(serializers.Serializer):
    """A draft rule of a tag of ``brand``: the tag (when it exists), its value type and
    values, and the rule as a document or as text."""

    brand = serializers.CharField(max_length=64)
    tag = serializers.IntegerField(required=False, min_value=1)
    value_type = serializers.ChoiceField(choices=ValueType.choices, required=False)
    kind = serializers.ChoiceField(choices=TagKind.choices, required=False)
    values = serializers.JSONField(required=False, allow_null=True)
    definition = serializers.JSONField(required=False)
    text = serializers.CharField(required=False, allow_blank=True, max_length=MAX_TEXT, trim_whitespace=False)

    def validate(self, attrs):
        if "definition" not in attrs and "text" not in attrs:
            raise serializers.ValidationError({"definition": [_("Give a definition or a text.")]})
        if attrs.get("values") is not None and not isinstance(attrs["values"], list):
            raise serializers.ValidationError(
                {"values": [_("Values must be a list of {code, label} objects.")]}
            )
        return attrs


CHECKED = inline_serializer(
    "CheckedRule",
    {
        "definition": serializers.JSONField(),
        "text": serializers.CharField(),
        "reads": serializers.ListField(child=serializers.CharField()),
        "fields": serializers.ListField(child=serializers.CharField()),
    },
)


def draft_scope(request, data) -> tuple[Brand, Tag | None, str | None, str | None]:
    """The brand (one the user may view: 404 otherwise), the tag (of that brand), the
    value type and the kind of a draft rule."""
    brand = get_object_or_404(Brand.objects.restrict(request.user, "view"), code=data["brand"])
    tag = None
    if data.get("tag"):
        tag = get_object_or_404(
            Tag.objects.restrict(request.user, "view").filter(brand=brand), pk=data["tag"]
        )
    value_type = data.get("value_type") or (tag.value_type if tag else None)
    kind = data.get("kind") or (tag.kind if tag else None)
    return brand, tag, value_type, kind


def problems(exc: Exception) -> dict[str, list[str]]:
    """``{path: [messages]}`` of a rule that does not parse or is not valid."""
    if isinstance(exc, RuleSyntaxError):
        return {"text": [str(exc)]}
    if isinstance(exc, RuleValidationError):
        return exc.as_dict()
    return {"definition": [_("The rule is too deeply nested.")]}


def checked(request, data) -> tuple[Brand, Tag | None, str | None, CheckedRule]:
    """The brand, tag and value type of a request's draft rule, and the rule checked;
    a rule that does not parse or is not valid answers 400 ``{path: [messages]}``."""
    brand, tag, value_type, kind = draft_scope(request, data)
    text = data.get("text")
    try:
        rule = check_rule(
            brand,
            value_type=value_type,
            values=data.get("values"),
            definition=data.get("definition"),
            text=text if text is not None and text.strip() else None,
            tag=tag,
            kind=kind,
        )
    except (RuleSyntaxError, RuleValidationError, RecursionError) as exc:
        raise ValidationError(problems(exc)) from exc
    return brand, tag, value_type, rule


class RuleCheckView(APIView):
    """Check a draft rule: give ``definition`` (a rule document) or ``text`` (the text
    syntax). A valid rule answers its canonical document and text, the tags and fields
    it reads; an invalid one answers 400 with ``{path: [messages]}`` (``text`` for a text
    that does not parse, with its line and column)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=RuleDraftSerializer, responses={200: CHECKED})
    def post(self, request):
        payload = RuleDraftSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        _brand, _tag, _value_type, rule = checked(request, payload.validated_data)
        return Response(
            {"definition": rule.definition, "text": rule.text, "reads": rule.reads, "fields": rule.fields}
        )


class RuleLanguageView(APIView):
    """What a rule may use, with labels: definition types (those producing ``value_type``
    when given), aggregations, picks, operators, attributes, sources and their fields,
    event types, channels; with ``brand``, the brand's tags a composite rule may read."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[
            OpenApiParameter("brand", OpenApiTypes.STR, description="brand code: list its tags"),
            OpenApiParameter("value_type", OpenApiTypes.STR, enum=ValueType.values),
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        value_type = request.query_params.get("value_type") or None
        if value_type is not None and value_type not in ValueType.values:
            return Response(
                {
                    "value_type": [
                        _("Expected one of %(choices)s.") % {"choices": ", ".join(ValueType.values)}
                    ]
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        described = language.describe(value_type)
        code = request.query_params.get("brand")
        if code:
            brand = get_object_or_404(Brand.objects.restrict(request.user, "view"), code=code)
            tags = Tag.objects.restrict(request.user, "view").filter(brand=brand).order_by("code")
            described["tags"] = [
                {"code": t.code, "name": t.name, "value_type": t.value_type, "values": t.values or []}
                for t in tags.only("code", "name", "value_type", "values")[:MAX_BRAND_TAGS]
            ]
        return Response(described)
