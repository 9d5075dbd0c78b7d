"""Serializers of the engine API."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.settings import api_settings

from tagportal.profiles import pii, schema
from tagportal.profiles.choices import PER_APP_TYPES, IdentityType
from tagportal.profiles.models import MAX_ONEID

from .. import realtime
from ..models import TagComputation, TagRun

MAX_PARTITIONS = 64


class TagComputationSerializer(serializers.ModelSerializer):
    tag = serializers.CharField(source="tag.code", read_only=True)
    tag_name = serializers.CharField(source="tag.name", read_only=True)
    brand = serializers.CharField(source="tag.brand.code", read_only=True)
    published_version = serializers.IntegerField(
        source="tag.published_version", read_only=True, allow_null=True
    )

    class Meta:
        model = TagComputation
        fields = [
            "id",
            "tag",
            "tag_name",
            "brand",
            "published_version",
            "version",
            "pending_version",
            "value_type",
            "is_calculating",
            "last_calculated_at",
            "errors_calculating",
            "last_error_at",
            "last_error",
            "population",
            "coverage",
            "distribution",
            "psi",
            "drift_flag",
        ]
        read_only_fields = fields


class TagRunSerializer(serializers.ModelSerializer):
    tag = serializers.CharField(source="tag.code", read_only=True)
    brand = serializers.CharField(source="brand.code", read_only=True)

    class Meta:
        model = TagRun
        fields = [
            "id",
            "tag",
            "brand",
            "tag_version",
            "pending_version",
            "status",
            "started_at",
            "finished_at",
            "duration_s",
            "evaluate_s",
            "rows_read",
            "peak_memory_mb",
            "population",
            "coverage",
            "distribution",
            "psi",
            "drift_flag",
            "error",
            "partitions",
        ]
        read_only_fields = fields


class ComputeRequestSerializer(serializers.Serializer):
    brand = serializers.CharField(help_text=gettext_lazy("brand code"))
    tags = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text=gettext_lazy("Tag codes; all the brand's published tags when left out."),
    )
    partitions = serializers.IntegerField(
        required=False,
        default=None,
        allow_null=True,
        min_value=1,
        max_value=MAX_PARTITIONS,
        help_text=gettext_lazy(
            "Split the people into this many OneID ranges computed in parallel; when left out, as many "
            "as keep each range within the memory budget (TAGPORTAL_COMPUTE_PARTITION_MB)."
        ),
    )


MAX_BATCH = 1000


class IdentityInputSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=IdentityType.choices)
    value = serializers.CharField(max_length=pii.MAX_VALUE_LENGTH, help_text=gettext_lazy("in clear"))
    app = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=64,
        help_text=gettext_lazy("The WeChat appid of an openid."),
    )


#: An event may be dated at most this far ahead (clocks differ), as in imports.
FUTURE_SLACK = dt.timedelta(days=1)


EARLIEST = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)


MAX_TEXT = 100


MAX_APP = 64


MAX_NUMBER = 1e12


class _EmptyIsMissing:
    """An event field that checks its value itself, with the event API's messages: a
    missing value, null and ``""`` are all "no value" (``missing()``), or "Required."."""

    def is_missing(self, data) -> bool:
        return data is empty or data is None or data == ""

    def missing(self):
        return None

    def run_validation(self, data=empty):
        if self.is_missing(data):
            if self.required:
                raise serializers.ValidationError(_("Required."))
            return self.missing()
        return self.to_internal_value(data)


class EventTextField(_EmptyIsMissing, serializers.CharField):
    """A text (a number is refused), stripped; no value is ``""``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_blank", not kwargs.get("required", True))
        super().__init__(**kwargs)

    def missing(self):
        return ""

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError(_("Expected a text."))
        text = data.strip()
        if self.required and not text:
            raise serializers.ValidationError(_("Required."))
        if self.max_length is not None and len(text) > self.max_length:
            raise serializers.ValidationError(_("Longer than %(max)d characters.") % {"max": self.max_length})
        return text


class EventNumberField(_EmptyIsMissing, serializers.FloatField):
    """A JSON number (not a text, not a boolean), finite and at most ``MAX_NUMBER`` in size."""

    def to_internal_value(self, data) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError(_("Not a number."))
        value = float(data)
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            raise serializers.ValidationError(_("Out of range."))
        return value


class EventTimeField(_EmptyIsMissing, serializers.DateTimeField):
    """ISO 8601 with a time zone, from 1970 to a day ahead, in UTC; no value is now."""

    def missing(self):
        return timezone.now()

    def to_internal_value(self, data) -> dt.datetime:
        moment = None
        if isinstance(data, str):
            try:
                moment = dt.datetime.fromisoformat(data.strip())
            except ValueError:
                moment = None
        if moment is None:
            raise serializers.ValidationError(
                _("Not a date and time: use ISO 8601 with a time zone, e.g. 2024-05-01T10:30:00+08:00.")
            )
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise serializers.ValidationError(
                _("The time has no time zone: add one, e.g. 2024-05-01T10:30:00+08:00 or …Z for UTC.")
            )
        moment = moment.astimezone(dt.UTC)
        if moment > timezone.now() + FUTURE_SLACK:
            raise serializers.ValidationError(_("In the future."))
        if moment < EARLIEST:
            raise serializers.ValidationError(_("Before 1970."))
        return moment


class IdentityTypeField(_EmptyIsMissing, serializers.ChoiceField):
    def is_missing(self, data) -> bool:
        return data is empty or not data

    def to_internal_value(self, data) -> str:
        if data not in IdentityType.values:
            raise serializers.ValidationError(
                _("Unknown identity type “%(value)s”; expected one of: %(allowed)s.")
                % {"value": data, "allowed": ", ".join(IdentityType.values)}
            )
        return data


class IdentityValueField(_EmptyIsMissing, serializers.CharField):
    """A text or a whole number, in clear (normalised by the serializer, by its type)."""

    def to_internal_value(self, data) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int):
            raise serializers.ValidationError(_("Expected a text."))
        return str(data)


class IdentityAppField(EventTextField):
    """The app of a WeChat openid: a text, stripped; any false value is none. Its
    length is checked after the rules of the identity type (by the serializer)."""

    def is_missing(self, data) -> bool:
        return data is empty or not data

    def to_internal_value(self, data) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError(_("Expected a text."))
        return data.strip()


class _ClosedSerializer(serializers.Serializer):
    """Refuses the fields it does not declare ("Unknown fields: …", reported with the
    declared fields' own problems), and names the problems of a nested serializer's
    fields ``<field>.<name>`` (its own problems ``<field>``)."""

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            return super().to_internal_value(data)  # "invalid"
        problems = {}
        unknown = sorted(str(name) for name in data if name not in self.fields)
        if unknown:
            problems[api_settings.NON_FIELD_ERRORS_KEY] = [
                _("Unknown fields: %(fields)s.") % {"fields": ", ".join(unknown)}
            ]
        try:
            attrs = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            problems.update(_flat_problems(exc.detail))
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


def _flat_problems(detail: Mapping) -> dict:
    flat = {}
    for name, problems in detail.items():
        if not isinstance(problems, Mapping):
            flat[name] = problems
            continue
        for inner, messages in problems.items():
            flat[name if inner == api_settings.NON_FIELD_ERRORS_KEY else f"{name}.{inner}"] = messages
    return flat


class EventIdentitySerializer(_ClosedSerializer):
    """Who an event is about; the value is normalised as imports normalise it, and
    only WeChat openids (and all of them) belong to an app. Validated data: a
    :class:`.realtime.CheckedIdentity`."""

    default_error_messages = {"invalid": gettext_lazy("Expected an object with type, value and app.")}

    type = IdentityTypeField(choices=IdentityType.choices)
    value = IdentityValueField(max_length=pii.MAX_VALUE_LENGTH, help_text=gettext_lazy("in clear"))
    app = IdentityAppField(
        required=False, max_length=MAX_APP, help_text=gettext_lazy("The WeChat appid of an openid.")
    )

    def run_validation(self, data=empty):
        if data is empty or data is None or data == "" or data == {}:
            raise serializers.ValidationError(
                _("Required: the person the event is about, as {type, value} (and app for WeChat openids).")
            )
        return super().run_validation(data)

    def to_internal_value(self, data):
        # the value and the app are checked against the type sent, when it is known
        self._sent_type = data.get("type") if isinstance(data, Mapping) else None
        if self._sent_type not in IdentityType.values:
            self._sent_type = None
        return super().to_internal_value(data)

    def validate_value(self, value: str) -> str:
        if self._sent_type is None:
            return value
        normalised, problem = pii.normalise_one(self._sent_type, value)
        if problem:
            raise serializers.ValidationError(problem)
        if not normalised:
            raise serializers.ValidationError(_("Required."))
        return normalised

    def validate_app(self, app: str) -> str:
        if self._sent_type in PER_APP_TYPES and not app:
            raise serializers.ValidationError(_("A WeChat openid needs its app (the appid)."))
        if self._sent_type and self._sent_type not in PER_APP_TYPES and app:
            raise serializers.ValidationError(_("Only WeChat openids belong to an app."))
        if len(app) > MAX_APP:
            raise serializers.ValidationError(_("Longer than %(max)d characters.") % {"max": MAX_APP})
        return app

    def validate(self, attrs) -> realtime.CheckedIdentity:
        return realtime.CheckedIdentity(**attrs)


class RealtimeEventSerializer(_ClosedSerializer):
    """The body of ``POST events/``: one behaviour event. Every problem is reported at
    once, by field (``identity.value`` for the parts of the identity). Validated data:
    a :class:`.realtime.CheckedEvent` (``brand`` is the view's)."""

    default_error_messages = {
        "invalid": gettext_lazy("Expected an event: an object with client_id, type, identity, …"),
    }

    brand = serializers.CharField(help_text=gettext_lazy("brand code"))
    client_id = EventTextField(
        max_length=MAX_TEXT,
        help_text=gettext_lazy("The sender's id of the event; sending it again adds nothing."),
    )
    type = EventTextField(max_length=MAX_TEXT, help_text=gettext_lazy("An event type, e.g. store_visit."))
    channel = EventTextField(required=False, max_length=MAX_TEXT)
    store = EventTextField(required=False, max_length=MAX_TEXT)
    value = EventNumberField(required=False, allow_null=True)
    time = EventTimeField(
        required=False, help_text=gettext_lazy("ISO 8601 with a time zone; now when left out.")
    )
    properties = serializers.DictField(
        required=False,
        allow_null=True,
        error_messages={"not_a_dict": gettext_lazy("Expected an object of property names and values.")},
    )
    identity = EventIdentitySerializer(
        help_text=gettext_lazy("Who the event is about; unknown creates a person.")
    )

    def validate_type(self, type_: str) -> str:
        if type_ not in schema.event_types():
            raise serializers.ValidationError(
                _("Unknown event type “%(value)s”; expected one of: %(allowed)s.")
                % {"value": type_, "allowed": ", ".join(sorted(schema.event_types()))}
            )
        return type_

    def validate_channel(self, channel: str) -> str:
        if channel and channel not in schema.CHANNELS:
            raise serializers.ValidationError(
                _("Unknown channel “%(value)s”; expected one of: %(allowed)s.")
                % {"value": channel, "allowed": ", ".join(sorted(schema.CHANNELS))}
            )
        return channel

    def validate(self, attrs) -> realtime.CheckedEvent:
        attrs.pop("brand", None)
        attrs["properties"] = dict(attrs.get("properties") or {})
        return realtime.CheckedEvent(**attrs)


class TagValueSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    value = serializers.JSONField(help_text=gettext_lazy("true/false, a value code, or a number"))
    bucket = serializers.CharField(required=False, help_text=gettext_lazy("number tags: the bucket's code"))
    version = serializers.IntegerField(
        allow_null=True, help_text=gettext_lazy("the published version the value comes from")
    )
    computed_at = serializers.DateTimeField(allow_null=True)


class TagChangeSerializer(serializers.Serializer):
    code = serializers.CharField()
    name = serializers.CharField()
    old = serializers.JSONField(allow_null=True)
    new = serializers.JSONField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)


class EventResultSerializer(serializers.Serializer):
    brand = serializers.CharField()
    event = serializers.IntegerField()
    client_id = serializers.CharField()
    oneid = serializers.IntegerField()
    created = serializers.BooleanField(help_text=gettext_lazy("False when the client id was sent before."))
    person_created = serializers.BooleanField()
    changes = TagChangeSerializer(many=True)
    failed = serializers.DictField(child=serializers.CharField())


class IdentityOutSerializer(serializers.Serializer):
    type = serializers.CharField()
    app = serializers.CharField()
    value = serializers.CharField(help_text=gettext_lazy("masked unless the caller may see personal data"))


class ProfileSerializer(serializers.Serializer):
    brand = serializers.CharField()
    oneid = serializers.IntegerField()
    requested_oneid = serializers.IntegerField(
        required=False, help_text=gettext_lazy("Given when the OneID asked for was merged into this person.")
    )
    identities = IdentityOutSerializer(
        many=True, required=False, help_text=gettext_lazy("With the permission to view identities.")
    )
    tags = TagValueSerializer(many=True)


class BoundedListField(serializers.ListField):
    """A list refused at once when longer than ``max_length``, before any item is
    checked (DRF checks every item first)."""

    def to_internal_value(self, data):
        if self.max_length is not None and isinstance(data, list) and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class BatchRequestSerializer(serializers.Serializer):
    brand = serializers.CharField(help_text=gettext_lazy("brand code"))
    oneids = BoundedListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ONEID),
        required=False,
        allow_empty=False,
        max_length=MAX_BATCH,
    )
    identities = BoundedListField(
        child=IdentityInputSerializer(), required=False, allow_empty=False, max_length=MAX_BATCH
    )

    def validate(self, attrs):
        if ("oneids" in attrs) == ("identities" in attrs):
            raise serializers.ValidationError(
                _("Give either oneids or identities (at most %(n)s).") % {"n": MAX_BATCH}
            )
        return attrs


class BatchItemSerializer(serializers.Serializer):
    oneid = serializers.IntegerField(allow_null=True, help_text=gettext_lazy("the person's OneID now"))
    requested_oneid = serializers.IntegerField(
        required=False, help_text=gettext_lazy("by OneID: the one asked for")
    )
    identity = IdentityOutSerializer(required=False, help_text=gettext_lazy("by identity: the one asked for"))
    found = serializers.BooleanField()
    tags = TagValueSerializer(many=True)


class BatchResultSerializer(serializers.Serializer):
    brand = serializers.CharField()
    count = serializers.IntegerField()
    results = BatchItemSerializer(many=True)
