"""Realtime tags: one event re-evaluates the realtime tags of its one person.

:func:`ingest_event` checks one behaviour event, writes it (idempotent on its
``client_id``; an identity nobody holds yet creates a person through the profiles
service, so the event is never lost) and, in the same transaction, calls
:func:`reevaluate`, which re-evaluates the brand's published tags whose refresh mode
is *realtime* for that person only:

1. the person is locked (``SELECT ... FOR NO KEY UPDATE``), so two events of one
   person are evaluated one after the other and the second sees the first;
2. only that person's rows are read: their profile attributes, and their events and
   orders within the widest window the realtime tags need (a tag without a window,
   or a ``days_since``, reads all of the person's rows of that source), and only the
   columns the tags read (a source no realtime tag reads is not queried);
3. the stored results of the realtime tags and of the other tags they read are read
   (two queries; deserialized bitmaps are cached per process): tags read that are
   not realtime themselves (batch or manual tags) give the person's stored values
   (``known``);
4. :func:`.evaluate.evaluate_tags` runs on ``population=[oneid]``;
5. only when a value changed are the results of the tags concerned locked
   (``SELECT ... FOR UPDATE``; re-read if another event updated them meanwhile) and
   their bitmaps updated in place: the OneID leaves the old value's bitmap and joins
   the new one's; counts, distribution, coverage and (number tags) the stored numbers
   follow; ``last_calculated_at`` moves on, which is what readers cache stored bitmaps
   under, so :func:`.results.values_for` answers the new value at once. A tag that
   was never computed gets its computation and one bitmap per declared value.

Nothing is written when the event is bad, and the event, the person it may have
created and the bitmap updates commit together or not at all.

The realtime tag specs (published snapshots, validated once, with the windows they
need) are cached per process and brand under the ``(tag id, published version)``
pairs of the brand's realtime tags; one small query per event checks that key, so
publishing a version, retiring a tag or changing its refresh mode is picked up by
every process at its next event.

Known limits:

- a batch computation of a realtime tag that loaded its data before some events
  arrived swaps in a result without those events' changes; the people concerned are
  corrected at their next event (or by the next computation);
- after a realtime tag is republished, realtime updates apply the new rules to the
  people who send events while the stored result keeps the old result version until
  a computation rebuilds it;
- number tags keep every person's number in one compressed array, rewritten on each
  change (~1 ms per 20,000 people): fine for realtime number tags over a few hundred
  thousand people, costly beyond;
- imported events and orders (the profiles import) do not re-evaluate realtime
  tags: a computation of the brand's tags brings them up to date.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import threading
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from numpy.lib import format as npy_format
from pyroaring import BitMap

from tagportal.catalog.choices import RefreshMode, TagStatus
from tagportal.catalog.models import Brand, Tag, TagVersion
from tagportal.core.permissions import may_add_into
from tagportal.profiles import schema
from tagportal.rules.definitions import RuleValidationError, tag_references, validate_definition

from . import bitmaps as bm
from . import frames as fr
from . import results, services
from .evaluate import TagSpec, evaluate_tags
from .models import TagComputation, TagValueBitmap

log = logging.getLogger(__name__)

SOURCES = ("events", "orders")
#: Fields an event may carry (``brand`` is the API's, ignored here).
EVENT_FIELDS = ("client_id", "type", "channel", "store", "value", "time", "properties", "identity")
IDENTITY_FIELDS = ("type", "value", "app")
MAX_TEXT = 100
MAX_APP = 64
MAX_NUMBER = 1e12
#: An event may be dated at most this far ahead (clocks differ), as in imports.
FUTURE_SLACK = dt.timedelta(days=1)
EARLIEST = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)
ONE_MICROSECOND = dt.timedelta(microseconds=1)


# ---------------------------------------------------------------------------
# Checking an event


@dataclass(frozen=True)
class IdentityInput:
    type: str
    value: str  # normalised
    app: str = ""


@dataclass(frozen=True)
class CleanEvent:
    client_id: str
    type: str
    time: dt.datetime
    identity: IdentityInput
    channel: str = ""
    store: str = ""
    value: float | None = None
    properties: dict = field(default_factory=dict)


def _text(payload: Mapping, name: str, errors: dict, *, required: bool = False, limit: int = MAX_TEXT) -> str:
    raw = payload.get(name)
    if raw is None or raw == "":
        if required:
            errors.setdefault(name, []).append(_("Required."))
        return ""
    if not isinstance(raw, str):
        errors.setdefault(name, []).append(_("Expected a text."))
        return ""
    text = raw.strip()
    if required and not text:
        errors.setdefault(name, []).append(_("Required."))
    elif len(text) > limit:
        errors.setdefault(name, []).append(_("Longer than %(max)d characters.") % {"max": limit})
    return text


def _time(raw, errors: dict, now: dt.datetime) -> dt.datetime:
    if raw is None or raw == "":
        return now
    moment = None
    if isinstance(raw, str):
        try:
            moment = dt.datetime.fromisoformat(raw.strip())
        except ValueError:
            moment = None
    if moment is None:
        errors.setdefault("time", []).append(
            _("Not a date and time: use ISO 8601 with a time zone, e.g. 2024-05-01T10:30:00+08:00.")
        )
        return now
    if moment.tzinfo is None or moment.utcoffset() is None:
        errors.setdefault("time", []).append(
            _("The time has no time zone: add one, e.g. 2024-05-01T10:30:00+08:00 or …Z for UTC.")
        )
        return now
    moment = moment.astimezone(dt.UTC)
    if moment > now + FUTURE_SLACK:
        errors.setdefault("time", []).append(_("In the future."))
    elif moment < EARLIEST:
        errors.setdefault("time", []).append(_("Before 1970."))
    return moment


def _number(raw, errors: dict) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        errors.setdefault("value", []).append(_("Not a number."))
        return None
    value = float(raw)
    if not math.isfinite(value) or abs(value) > MAX_NUMBER:
        errors.setdefault("value", []).append(_("Out of range."))
        return None
    return value


def _identity(raw, errors: dict) -> IdentityInput | None:
    from tagportal.profiles import pii
    from tagportal.profiles.choices import PER_APP_TYPES, IdentityType

    if raw is None or raw == "" or raw == {}:
        errors.setdefault("identity", []).append(
            _("Required: the person the event is about, as {type, value} (and app for WeChat openids).")
        )
        return None
    if not isinstance(raw, Mapping):
        errors.setdefault("identity", []).append(_("Expected an object with type, value and app."))
        return None
    unknown = sorted(str(k) for k in raw if k not in IDENTITY_FIELDS)
    if unknown:
        errors.setdefault("identity", []).append(
            _("Unknown fields: %(fields)s.") % {"fields": ", ".join(unknown)}
        )
    type_ = raw.get("type")
    if not type_:
        errors.setdefault("identity.type", []).append(_("Required."))
    elif type_ not in IdentityType.values:
        errors.setdefault("identity.type", []).append(
            _("Unknown identity type “%(value)s”; expected one of: %(allowed)s.")
            % {"value": type_, "allowed": ", ".join(IdentityType.values)}
        )
        type_ = None
    value = raw.get("value")
    normalised = ""
    if value is None or value == "":
        errors.setdefault("identity.value", []).append(_("Required."))
    elif not isinstance(value, str | int) or isinstance(value, bool):
        errors.setdefault("identity.value", []).append(_("Expected a text."))
    elif type_:
        normalised, problem = pii.normalise_one(type_, str(value))
        if problem:
            errors.setdefault("identity.value", []).append(problem)
        elif not normalised:
            errors.setdefault("identity.value", []).append(_("Required."))
    app = raw.get("app") or ""
    if not isinstance(app, str):
        errors.setdefault("identity.app", []).append(_("Expected a text."))
        app = ""
    app = app.strip()
    if type_ in PER_APP_TYPES and not app:
        errors.setdefault("identity.app", []).append(_("A WeChat openid needs its app (the appid)."))
    elif type_ and type_ not in PER_APP_TYPES and app:
        errors.setdefault("identity.app", []).append(_("Only WeChat openids belong to an app."))
    elif len(app) > MAX_APP:
        errors.setdefault("identity.app", []).append(_("Longer than %(max)d characters.") % {"max": MAX_APP})
    if not type_ or not normalised:
        return None
    return IdentityInput(type=type_, value=normalised, app=app)


def clean_event(payload, *, now: dt.datetime | None = None) -> CleanEvent:
    """Check one event; raise :class:`~django.core.exceptions.ValidationError` with every
    problem by field (``identity.value`` for the parts of the identity).

    Fields: ``client_id`` (required, the sender's id of the event), ``type`` (one of the
    event types of :mod:`tagportal.profiles.schema`), ``channel`` (optional, a known channel), ``store``,
    ``value`` (a number), ``time`` (ISO 8601 with a time zone; now when left out),
    ``properties`` (an object) and ``identity`` (``{type, value, app}``)."""
    now = now or timezone.now()
    if not isinstance(payload, Mapping):
        raise ValidationError(_("Expected an event: an object with client_id, type, identity, …"))
    errors: dict[str, list[str]] = {}
    unknown = sorted(str(k) for k in payload if k not in EVENT_FIELDS and k != "brand")
    if unknown:
        errors["non_field_errors"] = [_("Unknown fields: %(fields)s.") % {"fields": ", ".join(unknown)}]
    client_id = _text(payload, "client_id", errors, required=True)
    type_ = _text(payload, "type", errors, required=True)
    if type_ and type_ not in schema.event_types():
        errors.setdefault("type", []).append(
            _("Unknown event type “%(value)s”; expected one of: %(allowed)s.")
            % {"value": type_, "allowed": ", ".join(sorted(schema.event_types()))}
        )
    channel = _text(payload, "channel", errors)
    if channel and channel not in schema.CHANNELS:
        errors.setdefault("channel", []).append(
            _("Unknown channel “%(value)s”; expected one of: %(allowed)s.")
            % {"value": channel, "allowed": ", ".join(sorted(schema.CHANNELS))}
        )
    store = _text(payload, "store", errors)
    value = _number(payload.get("value"), errors)
    moment = _time(payload.get("time"), errors, now)
    properties = payload.get("properties")
    if properties is None:
        properties = {}
    elif not isinstance(properties, Mapping):
        errors.setdefault("properties", []).append(_("Expected an object of property names and values."))
        properties = {}
    identity = _identity(payload.get("identity"), errors)
    if errors:
        raise ValidationError(errors)
    return CleanEvent(
        client_id=client_id,
        type=type_,
        time=moment,
        identity=identity,
        channel=channel,
        store=store,
        value=value,
        properties=dict(properties),
    )


# ---------------------------------------------------------------------------
# The realtime tags of a brand (cached per process)


@dataclass
class Lookback:
    """How far back a source's rows are needed: everything, or whole Beijing days."""

    unbounded: bool = False
    days: int = 0  # the largest ``last_days``
    first_day: int | None = None  # the earliest ``between`` start (days since 1970-01-01)

    def widen(self, window) -> None:
        if not window or not isinstance(window, Mapping):
            self.unbounded = True
            return
        try:
            if "last_days" in window:
                self.days = max(self.days, int(window["last_days"]))
                return
            if "between" in window:
                day = fr.date_to_day(window["between"][0])
                self.first_day = day if self.first_day is None else min(self.first_day, day)
                return
        except (TypeError, ValueError, IndexError, KeyError):
            pass
        self.unbounded = True

    def since(self, as_of: dt.datetime) -> dt.datetime | None:
        """The first moment needed (Beijing midnight), or None for every row."""
        if self.unbounded:
            return None
        days = []
        if self.days:
            days.append(fr.beijing_day(as_of) - self.days + 1)
        if self.first_day is not None:
            days.append(self.first_day)
        if not days:
            return None
        first = fr.EPOCH + dt.timedelta(days=min(days))
        return dt.datetime(first.year, first.month, first.day, tzinfo=services.BEIJING)


def source_fields(definitions: Iterable) -> dict[str, set[str]]:
    """Per source (events / orders), the fields the definitions read (aggregated,
    filtered on, picked): only those columns are loaded for one person."""
    found: dict[str, set[str]] = {}

    def visit(node):
        if isinstance(node, Mapping):
            source = node.get("source")
            if source in SOURCES:
                fields = found.setdefault(source, set())
                if isinstance(node.get("field"), str):
                    fields.add(node["field"])
                for predicate in node.get("where") or ():
                    if isinstance(predicate, Mapping) and isinstance(predicate.get("field"), str):
                        fields.add(predicate["field"])
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for doc in definitions:
        visit(doc)
    return found


def lookbacks(definitions: Iterable) -> dict[str, Lookback]:
    """Per source (events / orders), the widest window the definitions read it with."""
    found: dict[str, Lookback] = {}

    def visit(node):
        if isinstance(node, Mapping):
            source = node.get("source")
            if source in SOURCES:
                window = None if "days_since" in node else node.get("window")
                found.setdefault(source, Lookback()).widen(window)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for doc in definitions:
        visit(doc)
    return found


@dataclass(frozen=True)
class RealtimeTag:
    tag_id: int
    code: str
    name: str
    version: int
    spec: TagSpec


@dataclass
class RealtimeSpecs:
    """The published realtime tags of a brand, ready to evaluate."""

    key: tuple
    tags: dict[int, RealtimeTag] = field(default_factory=dict)
    #: tag code -> why it cannot be evaluated (missing snapshot, invalid definition).
    errors: dict[str, str] = field(default_factory=dict)
    #: codes of the tags they read that are not evaluated here -> value type.
    reads: dict[str, str] = field(default_factory=dict)
    lookback: dict[str, Lookback] = field(default_factory=dict)
    #: source -> the fields read (columns to load).
    fields: dict[str, set[str]] = field(default_factory=dict)

    @property
    def specs(self) -> list[TagSpec]:
        return [t.spec for t in self.tags.values()]


_SPECS: dict[int, RealtimeSpecs] = {}
_SPECS_LOCK = threading.Lock()


def _spec_key(brand: Brand) -> tuple:
    return tuple(
        Tag.objects.filter(brand=brand, status=TagStatus.PUBLISHED, refresh_mode=RefreshMode.REALTIME)
        .order_by("pk")
        .values_list("pk", "published_version")
    )


def realtime_specs(brand: Brand) -> RealtimeSpecs:
    """The brand's published realtime tags, from the per-process cache when their
    published versions did not change (one query checks that)."""
    key = _spec_key(brand)
    cached = _SPECS.get(brand.pk)
    if cached is not None and cached.key == key:
        return cached
    built = _build_specs(brand, key)
    with _SPECS_LOCK:
        _SPECS[brand.pk] = built
    return built


def clear_spec_cache() -> None:
    with _SPECS_LOCK:
        _SPECS.clear()


def _build_specs(brand: Brand, key: tuple) -> RealtimeSpecs:
    built = RealtimeSpecs(key=key)
    if not key:
        return built
    condition = Q()
    for tag_id, version in key:
        condition |= Q(tag_id=tag_id, version=version)
    versions = {v.tag_id: v for v in TagVersion.objects.filter(condition).select_related("tag")}
    codes_by_id = dict(Tag.objects.filter(pk__in=[tag_id for tag_id, _v in key]).values_list("pk", "code"))
    candidates: dict[int, RealtimeTag] = {}
    for tag_id, version in key:
        snapshot = versions.get(tag_id)
        if snapshot is None:
            built.errors[codes_by_id.get(tag_id, str(tag_id))] = _(
                "Published version %(n)s of the tag is missing."
            ) % {"n": version}
            continue
        snap = snapshot.snapshot or {}
        if snap.get("refresh_mode", RefreshMode.REALTIME) != RefreshMode.REALTIME:
            continue  # the live field was edited, the published version is a batch tag
        spec = services.spec_of(snapshot)
        if isinstance(spec.definition, dict) and spec.definition.get("type") == "manual":
            continue  # values come from uploaded lists
        candidates[tag_id] = RealtimeTag(
            tag_id, spec.code, snap.get("name") or snapshot.tag.name, version, spec
        )
    codes = {t.code for t in candidates.values()}
    referenced = set().union(*(tag_references(t.spec.definition) for t in candidates.values()))
    types = dict(
        Tag.objects.filter(brand=brand, code__in=sorted(referenced - codes)).values_list("code", "value_type")
    )
    types.update({t.code: t.spec.value_type for t in candidates.values()})
    for tag_id, tag in candidates.items():
        spec = tag.spec
        values = [
            str(v["code"]) if isinstance(v, dict) else str(v) for v in spec.values or () if v is not None
        ]
        try:
            validate_definition(
                spec.definition,
                spec.value_type,
                values if spec.value_type == "enum" and values else None,
                known_tag=types.get,
            )
        except RuleValidationError as exc:
            built.errors[tag.code] = _("Invalid definition: %(error)s") % {"error": exc}
            continue
        built.tags[tag_id] = tag
    evaluated = {t.code for t in built.tags.values()}
    built.reads = {code: types[code] for code in sorted(referenced - evaluated) if code in types}
    built.lookback = lookbacks(t.spec.definition for t in built.tags.values())
    built.fields = source_fields(t.spec.definition for t in built.tags.values())
    if built.errors:
        log.warning("realtime tags of %s that cannot be evaluated: %s", brand.code, built.errors)
    return built


# ---------------------------------------------------------------------------
# One person's frames and stored values


#: The columns of the engine's input frames, as the profiles app loads them.
COLUMNS = {
    "events": ("type", "channel", "store", "value"),
    "orders": ("amount", "quantity", "channel", "store", "category", "sku", "discount"),
}
NUMBER_COLUMNS = {"value", "amount", "quantity", "discount"}
PROPERTY_PREFIX = "properties."


def _floats(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype="float64")


def person_frames(brand: Brand, customer, realtime: RealtimeSpecs, as_of: dt.datetime) -> tuple:
    """``(profiles, events, orders)`` of one person, as :func:`.evaluate.evaluate_tags`
    reads them (the columns of the profiles app's ``load_frames``), with only the rows
    the realtime tags' windows reach and only the columns they read; a source no tag
    reads is None."""
    from tagportal.profiles.models import Event, Order

    oneid = int(customer.oneid)
    profiles = pd.DataFrame([{"oneid": oneid, **(customer.attributes or {})}])
    out = [profiles, None, None]
    for position, source in enumerate(SOURCES, start=1):
        lookback = realtime.lookback.get(source)
        if lookback is None:
            continue
        fields = realtime.fields.get(source, set())
        names = [name for name in COLUMNS[source] if name in fields]
        keys = sorted(f[len(PROPERTY_PREFIX) :] for f in fields if f.startswith(PROPERTY_PREFIX))
        model = Event if source == "events" else Order
        rows = model.objects.filter(brand=brand, customer_id=customer.pk).order_by()
        since = lookback.since(as_of)
        if since is not None:
            rows = rows.filter(time__gte=since)
        found = list(rows.values_list("time", *names, *(["properties"] if keys else [])))
        columns: dict[str, object] = {
            "oneid": np.full(len(found), oneid, dtype="int64"),
            "time": pd.DatetimeIndex([row[0] for row in found], dtype="datetime64[us, UTC]"),
        }
        for i, name in enumerate(names, start=1):
            values = [row[i] for row in found]
            columns[name] = _floats(values) if name in NUMBER_COLUMNS else values
        if keys:
            properties = [row[-1] if isinstance(row[-1], dict) else {} for row in found]
            for key in keys:
                columns[PROPERTY_PREFIX + key] = [item.get(key) for item in properties]
        out[position] = pd.DataFrame(columns)
    return tuple(out)


def _stored_numbers(pk: int, stamp) -> pd.Series:
    """The numbers of a number tag's result (computation ``pk`` as of ``stamp``), from
    the engine's cache (:func:`.results.result_numbers`); empty without numbers."""
    found = results.result_numbers({pk: stamp}).get(pk)
    if found is None:
        found = pd.Series([], index=pd.Index([], dtype="int64", name="oneid"), dtype="float64")
    return found


def _packed_numbers(numbers: pd.Series) -> bytes:
    """Like :func:`.models.pack_numbers` (an ``.npz`` read back by
    :func:`.models.unpack_numbers`), with the fastest deflate level: on every change
    the whole array is rewritten, and numpy's default level costs ~10x more for a
    ~15% smaller file (an uncompressed one is 6x larger and slow to write to the
    database). The next batch computation stores it with numpy's default again."""
    buffer = io.BytesIO()
    arrays = (
        ("oneids", numbers.index.to_numpy(dtype="int64")),
        ("values", numbers.to_numpy(dtype="float64")),
    )
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, array in arrays:
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                npy_format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _label_of(maps: Mapping[str, BitMap], oneid: int) -> str | None:
    return next((value for value, b in maps.items() if oneid in b), None)


# ---------------------------------------------------------------------------
# Re-evaluating one person


@dataclass
class TagChange:
    """One tag whose value of the person changed (``None``: no value)."""

    tag_id: int
    code: str
    name: str
    old: object
    new: object
    version: int | None

    def as_dict(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "old": self.old,
            "new": self.new,
            "version": self.version,
        }


@dataclass
class _Outcome:
    label: str | None  # the value's bitmap the person belongs in
    number: float | None  # number tags
    declared: list[str]  # one bitmap per declared value (for a first result)


def _typed(label: str | None, number: float | None, value_type: str):
    if value_type == "number":
        return number
    if label is None:
        return None
    return label == "true" if value_type == "boolean" else label


def _outcome(spec: TagSpec, series: pd.Series) -> _Outcome:
    """The person's value (a one-row Series) as a batch computation stores it: booleans
    as ``true`` / ``false``, enum codes (an empty text is no value), numbers with the
    code of their bucket."""
    value = series.iloc[0]
    declared = bm.declared_values(spec.value_type, spec.values)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return _Outcome(None, None, declared)
    if spec.value_type == "boolean":
        return _Outcome(services.value_text(bool(value)), None, declared)
    if spec.value_type == "number":
        number = float(fr.numbers(series)[0])
        if math.isnan(number):
            return _Outcome(None, None, declared)
        buckets = fr.value_buckets(spec.values)
        choice = fr.bucket_index(np.array([number]), [(low, high) for _code, low, high in buckets])[0]
        return _Outcome(buckets[choice][0] if choice >= 0 else None, number, declared)
    text = str(fr.texts(series).iloc[0])
    return _Outcome(text if text.strip() else None, None, declared)


def _same_number(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b


@dataclass
class _Stored:
    """A tag's current result (its computation row) and its bitmaps."""

    pk: int
    tag_id: int
    version: int | None
    value_type: str
    last_calculated_at: dt.datetime | None
    population: int | None
    distribution: dict
    rows: dict[str, int] = field(default_factory=dict)  # value -> bitmap row pk
    maps: dict[str, BitMap] = field(default_factory=dict)  # value -> bitmap

    @property
    def has_result(self) -> bool:
        return self.version is not None

    def label(self, oneid: int) -> str | None:
        return _label_of(self.maps, oneid)

    def number(self, oneid: int) -> float | None:
        if self.value_type != "number" or not self.has_result:
            return None
        numbers = _stored_numbers(self.pk, self.last_calculated_at)
        return float(numbers.loc[oneid]) if oneid in numbers.index else None


_STORED_FIELDS = ("pk", "tag_id", "version", "value_type", "last_calculated_at", "population", "distribution")


def _with_bitmaps(stored: list[_Stored]) -> list[_Stored]:
    """Fill in the bitmaps (one query for the rows, blobs from the cache)."""
    by_pk = {c.pk: c for c in stored}
    if not by_pk:
        return stored
    rows = list(
        TagValueBitmap.objects.filter(computation_id__in=list(by_pk))
        .order_by()
        .values_list("pk", "computation_id", "value")
    )
    maps = results.stored_bitmaps(
        {pk: by_pk[computation_id].last_calculated_at for pk, computation_id, _v in rows}
    )
    for pk, computation_id, value in rows:
        by_pk[computation_id].rows[value] = pk
        by_pk[computation_id].maps[value] = maps[pk]
    return stored


def _current(brand: Brand, realtime: RealtimeSpecs) -> tuple[dict[int, _Stored], dict[str, _Stored]]:
    """The stored results of the realtime tags (by tag id) and of the tags they read
    (by code): two queries, no locks. The person is locked, so nobody else moves them
    meanwhile; the results are locked later, only when a value changes."""
    condition = Q(tag_id__in=list(realtime.tags))
    if realtime.reads:
        condition |= Q(tag__brand=brand, tag__code__in=list(realtime.reads), version__isnull=False) & ~Q(
            tag__status=TagStatus.RETIRED
        )
    found = TagComputation.objects.filter(condition).order_by().values_list(*_STORED_FIELDS, "tag__code")
    stored, codes = [], {}
    for row in found:
        computation = _Stored(*row[:-1])
        stored.append(computation)
        codes[computation.tag_id] = row[-1]
    _with_bitmaps(stored)
    evaluated = {c.tag_id: c for c in stored if c.tag_id in realtime.tags}
    read = {codes[c.tag_id]: c for c in stored if c.tag_id not in realtime.tags}
    return evaluated, read


def _known_values(
    oneid: int, reads: Mapping[str, str], stored: Mapping[str, _Stored]
) -> dict[str, pd.Series]:
    """The person's stored values of the tags read but not evaluated here, as
    :func:`.results.values_for` gives them (no value when the tag has no result)."""
    index = pd.Index([oneid], dtype="int64", name="oneid")
    known = {}
    for code, value_type in reads.items():
        value = None
        computation = stored.get(code)
        if computation is not None:
            if computation.value_type == "number":
                value = computation.number(oneid)
            else:
                value = _typed(computation.label(oneid), None, computation.value_type)
        if value_type == "boolean":
            known[code] = pd.Series([pd.NA if value is None else bool(value)], index=index, dtype="boolean")
        elif value_type == "number":
            known[code] = pd.Series([np.nan if value is None else float(value)], index=index, dtype="float64")
        else:
            known[code] = pd.Series([value], index=index, dtype=pd.StringDtype("pyarrow"))
    return known


def _lock_computations(tag_ids: list[int]) -> dict[int, _Stored]:
    """The tags' computations, created when missing, locked in pk order."""

    def locked(ids):
        query = TagComputation.objects.select_for_update().filter(tag_id__in=ids).order_by("pk")
        return {row[1]: _Stored(*row) for row in query.values_list(*_STORED_FIELDS)}

    found = locked(tag_ids)
    missing = [tag_id for tag_id in tag_ids if tag_id not in found]
    if missing:
        TagComputation.objects.bulk_create(
            [TagComputation(tag_id=tag_id) for tag_id in missing], ignore_conflicts=True
        )
        found.update(locked(missing))
    return found


def _differs(computation: _Stored | None, outcome: _Outcome, oneid: int, value_type: str) -> bool:
    if computation is None:
        return outcome.label is not None or outcome.number is not None
    if computation.label(oneid) != outcome.label:
        return True
    return value_type == "number" and not _same_number(computation.number(oneid), outcome.number)


def _store(
    realtime: RealtimeSpecs,
    oneid: int,
    outcomes: Mapping[int, _Outcome],
    current: Mapping[int, _Stored],
    person_created: bool,
) -> tuple[list[TagChange], dict[int, str]]:
    """Move the person between the bitmaps of the tags whose value changed: their
    results are locked, re-read if another event updated them since ``current`` was
    read, and written back with a new ``last_calculated_at``."""
    changes: list[TagChange] = []
    skipped: dict[int, str] = {}
    changed = []
    for tag_id, outcome in sorted(outcomes.items()):
        computation = current.get(tag_id)
        value_type = realtime.tags[tag_id].spec.value_type
        if computation is not None and computation.has_result and computation.value_type != value_type:
            skipped[tag_id] = _("The stored result has another value type; compute the tag again.")
        elif _differs(computation, outcome, oneid, value_type):
            changed.append(tag_id)
    if not changed:
        return changes, skipped
    locked = _lock_computations(changed)
    stale = [
        c
        for tag_id, c in locked.items()
        if tag_id not in current or current[tag_id].last_calculated_at != c.last_calculated_at
    ]
    fresh = {c.tag_id: c for c in _with_bitmaps(stale)}
    now = timezone.now()
    remember_bitmaps: dict[tuple, BitMap] = {}
    remember_numbers: dict[tuple, pd.Series] = {}
    person = BitMap([oneid])
    for tag_id in changed:
        tag, outcome = realtime.tags[tag_id], outcomes[tag_id]
        spec = tag.spec
        computation = fresh.get(tag_id) or current[tag_id]
        computation.population, computation.distribution = (
            locked[tag_id].population,
            locked[tag_id].distribution,
        )
        has_result = computation.has_result
        old_label, old_number = computation.label(oneid), computation.number(oneid)
        if old_label == outcome.label and (
            spec.value_type != "number" or _same_number(old_number, outcome.number)
        ):
            continue
        new_maps = dict(computation.maps)
        dirty = set()
        if not has_result:  # a first result: one (empty) bitmap per declared value
            for value in outcome.declared:
                new_maps.setdefault(value, BitMap())
            dirty |= {value for value in new_maps if value not in computation.rows}
        if old_label is not None and old_label != outcome.label:
            new_maps[old_label] = new_maps[old_label] - person
            dirty.add(old_label)
        if outcome.label is not None and outcome.label != old_label:
            new_maps[outcome.label] = new_maps.get(outcome.label, BitMap()) | person
            dirty.add(outcome.label)
        stamp = now
        if computation.last_calculated_at is not None:
            stamp = max(now, computation.last_calculated_at + ONE_MICROSECOND)
        created = []
        for value in sorted(dirty):
            data, count = bm.serialize(new_maps[value]), len(new_maps[value])
            if value in computation.rows:
                TagValueBitmap.objects.filter(pk=computation.rows[value]).update(bitmap=data, count=count)
            else:
                created.append(
                    TagValueBitmap(computation_id=computation.pk, value=value, bitmap=data, count=count)
                )
        if created:
            TagValueBitmap.objects.bulk_create(created)
        pks = dict(computation.rows)
        pks.update({row.value: row.pk for row in created if row.pk is not None})
        remember_bitmaps.update({(pk, stamp): new_maps[value] for value, pk in pks.items()})
        distribution = dict(computation.distribution or {}) if has_result else {}
        distribution.update({value: len(new_maps[value]) for value in dirty})
        population = computation.population if has_result else None
        if population is not None and person_created:
            population += 1
        update = {"last_calculated_at": stamp, "distribution": distribution, "population": population}
        number_count = 0
        if spec.value_type == "number":
            numbers = _stored_numbers(computation.pk, computation.last_calculated_at) if has_result else None
            updated = numbers if numbers is not None else pd.Series([], dtype="float64")
            if outcome.number is None:
                updated = updated.drop(index=[oneid], errors="ignore")
            elif oneid in updated.index:
                updated = updated.copy()
                updated.loc[oneid] = outcome.number
            else:
                updated = pd.concat([updated, pd.Series([outcome.number], index=[oneid])]).sort_index()
            updated.index = pd.Index(updated.index.to_numpy(dtype="int64"), name="oneid")
            update["numbers"] = _packed_numbers(updated)
            number_count = len(updated)
            remember_numbers[(computation.pk, stamp)] = updated
        update["coverage"] = bm.coverage(spec.value_type, distribution, number_count, population)
        if not has_result:
            update.update(version=tag.version, value_type=spec.value_type, errors_calculating=0)
        TagComputation.objects.filter(pk=computation.pk).update(**update)
        changes.append(
            TagChange(
                tag_id=tag_id,
                code=tag.code,
                name=tag.name,
                old=_typed(old_label, old_number, spec.value_type),
                new=_typed(outcome.label, outcome.number, spec.value_type),
                version=computation.version if has_result else tag.version,
            )
        )
    if remember_bitmaps or remember_numbers:

        def remember():
            results.remember_bitmaps(remember_bitmaps)
            results.remember_numbers(remember_numbers)

        transaction.on_commit(remember)
    return changes, skipped


def reevaluate(
    brand,
    customer,
    *,
    as_of: dt.datetime | None = None,
    person_created: bool = False,
    lock_person: bool = True,
) -> tuple[list[TagChange], dict[str, str]]:
    """Re-evaluate the brand's realtime tags for one person (a Customer, active, of the
    brand) and store the values that changed. Answers the changes and the tags that
    could not be evaluated (``{code: why}``; they keep their stored value).

    ``person_created``: the person did not exist before (counted into the stored
    results' population). ``lock_person``: lock the person first (a caller that
    already holds the lock passes False). Runs in the caller's transaction (or its
    own)."""
    from tagportal.profiles.models import Customer

    brand = services.resolve_brand(brand)
    realtime = realtime_specs(brand)
    failed = dict(realtime.errors)
    if not realtime.tags:
        return [], failed
    as_of = as_of or timezone.now()
    oneid = int(customer.oneid)
    with transaction.atomic(savepoint=False):
        if lock_person:
            list(Customer.objects.select_for_update(no_key=True).filter(pk=customer.pk).values_list("pk"))
        frames = person_frames(brand, customer, realtime, as_of)
        current, read = _current(brand, realtime)
        result = evaluate_tags(
            realtime.specs,
            *frames,
            as_of,
            pd.Index([oneid], dtype="int64", name="oneid"),
            known=_known_values(oneid, realtime.reads, read),
            validate=False,
        )
        outcomes = {}
        for tag_id, tag in realtime.tags.items():
            series = result.values.get(tag.code)
            if tag.code in result.errors or series is None:
                failed[tag.code] = result.errors.get(tag.code) or _("The tag was not evaluated.")
                continue
            try:
                outcomes[tag_id] = _outcome(tag.spec, series)
            except (ValueError, TypeError) as exc:
                failed[tag.code] = f"{type(exc).__name__}: {exc}"
        changes, skipped = _store(realtime, oneid, outcomes, current, person_created)
    for tag_id, message in skipped.items():
        failed[realtime.tags[tag_id].code] = message
    if len(failed) > len(realtime.errors):
        log.warning("realtime tags of %s failed for OneID %s: %s", brand.code, oneid, failed)
    return changes, failed


# ---------------------------------------------------------------------------
# Ingesting an event


class Ingested(tuple):
    """What :func:`ingest_event` did: unpacks as ``(event, customer, changes)`` and also
    says whether the event was new (``created``; False when its client id was sent
    before), whether it created the person (``person_created``) and which realtime tags
    failed (``failed``: ``{code: why}``)."""

    def __new__(cls, event, customer, changes, *, created=True, person_created=False, failed=None):
        obj = super().__new__(cls, (event, customer, changes))
        obj.created = created
        obj.person_created = person_created
        obj.failed = dict(failed or {})
        return obj

    @property
    def event(self):
        return self[0]

    @property
    def customer(self):
        return self[1]

    @property
    def changes(self) -> list[TagChange]:
        return self[2]


def active_customer(customer):
    """The person a (possibly merged) customer now is."""
    from tagportal.profiles.models import Customer

    for _step in range(20):
        if customer.merged_into_id is None:
            return customer
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def _existing_event(brand: Brand, client_id: str):
    from tagportal.profiles.models import Event

    found = list(
        Event.objects.filter(brand=brand, client_id=client_id).order_by().values_list("pk", flat=True)[:1]
    )
    if not found:
        return None
    event = Event.objects.select_related("customer").get(pk=found[0])
    return Ingested(event, active_customer(event.customer), [], created=False)


def _person(brand: Brand, identity: IdentityInput):
    """``(customer, identity id, created)``: the person holding the identity, locked; a
    new person when nobody holds it (through the profiles service)."""
    from tagportal.profiles import pii
    from tagportal.profiles import services as profile_services
    from tagportal.profiles.models import Customer, Identity

    value_hash = pii.hash_value(identity.type, identity.value)
    found = next(
        iter(
            Identity.objects.filter(brand=brand, type=identity.type, app=identity.app, value_hash=value_hash)
            .order_by()
            .values_list("pk", "customer_id")[:1]
        ),
        None,
    )
    created = False
    if found is None:
        links = pd.DataFrame(
            {"record": [0], "type": [identity.type], "app": [identity.app], "value": [identity.value]}
        )
        resolved = profile_services.resolve_identities(brand, links, reason=_("Realtime event"))
        record = resolved.records.iloc[0]
        identity_id = None if pd.isna(record["identity_id"]) else int(record["identity_id"])
        found = (identity_id, int(record["customer_id"]))
        created = resolved.customers_created > 0
    identity_id, customer_id = found
    # FOR NO KEY UPDATE: events of one person queue here; inserting events (which take
    # a KEY SHARE lock on their customer) is not blocked.
    customer = Customer.objects.select_for_update(no_key=True).get(pk=customer_id)
    if customer.merged_into_id is not None:
        customer = active_customer(customer)
        customer = Customer.objects.select_for_update(no_key=True).get(pk=customer.pk)
    return customer, identity_id, created


def _write_event(brand: Brand, clean: CleanEvent, customer, identity_id):
    """Write the event with the profiles service that writes imported events."""
    from tagportal.profiles import services as profile_services
    from tagportal.profiles.models import Event

    row = pd.DataFrame(
        {
            "customer_id": [customer.pk],
            "identity_id": pd.array([identity_id], dtype="Int64"),
            "client_id": [clean.client_id],
            "type": [clean.type],
            "channel": [clean.channel],
            "store": [clean.store],
            "value": [np.nan if clean.value is None else clean.value],
            "time": pd.DatetimeIndex([clean.time]),
            "properties": [clean.properties],
        }
    )
    profile_services.write_events(brand, row)
    return Event.objects.get(brand=brand, client_id=clean.client_id)


def ingest_event(brand, payload, user=None) -> Ingested:
    """Check and write one behaviour event, then re-evaluate the realtime tags of its
    person (see the module docstring). Answers ``(event, customer, changes)``
    (:class:`Ingested`); an event whose ``client_id`` the brand already has is not
    written again and changes nothing (``created`` is False).

    With ``user``, the user needs ``profiles.add_event`` and a grant to change the
    brand. Bad input raises :class:`~django.core.exceptions.ValidationError` (nothing
    written)."""
    from tagportal.profiles.models import Event

    brand = services.resolve_brand(brand)
    if user is not None and not may_add_into(user, Event, brand):
        raise PermissionDenied(_("You may not send events to the brand “%(brand)s”.") % {"brand": brand})
    clean = clean_event(payload)
    existing = _existing_event(brand, clean.client_id)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            customer, identity_id, person_created = _person(brand, clean.identity)
            event = _write_event(brand, clean, customer, identity_id)
            changes, failed = reevaluate(brand, customer, person_created=person_created, lock_person=False)
    except IntegrityError:
        existing = _existing_event(brand, clean.client_id)  # the same event, sent twice at once
        if existing is None:
            raise
        return existing
    return Ingested(event, customer, changes, created=True, person_created=person_created, failed=failed)
