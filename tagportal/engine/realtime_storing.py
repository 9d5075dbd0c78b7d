"""The stored results of realtime tags, read and updated for one person (see
:mod:`.realtime`).

:func:`current_results` reads the stored results of the realtime tags and of the
other tags they read (two queries, no locks; deserialized bitmaps and numbers are
cached per process); :func:`known_values` gives the person's stored values of the
tags read but not evaluated. :func:`outcome_of` turns the person's evaluated value
into what a batch computation stores, and :func:`store_new_values` stores the values
that changed: only then are the results of the tags concerned locked
(``SELECT ... FOR UPDATE``; re-read if another event updated them meanwhile) and
their bitmaps updated in place: the OneID leaves the old value's bitmap and joins the
new one's; counts, distribution, coverage and (number tags) the stored numbers follow;
``last_calculated_at`` moves on, which is what readers cache stored bitmaps under, so
:func:`.results.values_for` answers the new value at once. A tag that was never
computed gets its computation and one bitmap per declared value.
"""

from __future__ import annotations

import datetime as dt
import io
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from numpy.lib import format as npy_format
from pyroaring import BitMap

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Brand

from . import bitmaps as bm
from . import frames as fr
from . import results, services
from .evaluate import TagSpec
from .models import TagComputation, TagValueBitmap
from .realtime_specs import RealtimeSpecs, RealtimeTag

ONE_MICROSECOND = dt.timedelta(microseconds=1)


# ---------------------------------------------------------------------------
# Stored bitmaps and numbers (cached per process)


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


@dataclass
class _Written:
    """Bitmaps and numbers written in this transaction, cached once it commits."""

    bitmaps: dict[tuple, BitMap] = field(default_factory=dict)
    numbers: dict[tuple, pd.Series] = field(default_factory=dict)

    def remember_on_commit(self) -> None:
        if not (self.bitmaps or self.numbers):
            return

        def remember():
            results.remember_bitmaps(self.bitmaps)
            results.remember_numbers(self.numbers)

        transaction.on_commit(remember)


# ---------------------------------------------------------------------------
# Reading the stored results


@dataclass
class StoredResult:
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
        """The value whose bitmap holds the person."""
        return next((value for value, b in self.maps.items() if oneid in b), None)

    def number(self, oneid: int) -> float | None:
        if self.value_type != "number" or not self.has_result:
            return None
        numbers = _stored_numbers(self.pk, self.last_calculated_at)
        return float(numbers.loc[oneid]) if oneid in numbers.index else None

    def numbers(self) -> pd.Series:
        """Every person's number (none without a result)."""
        if not self.has_result:
            return pd.Series([], dtype="float64")
        return _stored_numbers(self.pk, self.last_calculated_at)


_STORED_FIELDS = ("pk", "tag_id", "version", "value_type", "last_calculated_at", "population", "distribution")


def _with_bitmaps(stored: list[StoredResult]) -> list[StoredResult]:
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


def current_results(
    brand: Brand, realtime: RealtimeSpecs
) -> tuple[dict[int, StoredResult], dict[str, StoredResult]]:
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
        computation = StoredResult(*row[:-1])
        stored.append(computation)
        codes[computation.tag_id] = row[-1]
    _with_bitmaps(stored)
    evaluated = {c.tag_id: c for c in stored if c.tag_id in realtime.tags}
    read = {codes[c.tag_id]: c for c in stored if c.tag_id not in realtime.tags}
    return evaluated, read


def known_values(
    oneid: int, reads: Mapping[str, str], stored: Mapping[str, StoredResult]
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


# ---------------------------------------------------------------------------
# The person's new values


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
class Outcome:
    """The person's value of a tag, as a batch computation stores it."""

    label: str | None  # the value's bitmap the person belongs in
    number: float | None  # number tags
    declared: list[str]  # one bitmap per declared value (for a first result)


def _typed(label: str | None, number: float | None, value_type: str):
    if value_type == "number":
        return number
    if label is None:
        return None
    return label == "true" if value_type == "boolean" else label


def _number_outcome(spec: TagSpec, series: pd.Series, declared: list[str]) -> Outcome:
    number = float(fr.numbers(series)[0])
    if math.isnan(number):
        return Outcome(None, None, declared)
    buckets = fr.value_buckets(spec.values)
    choice = fr.bucket_index(np.array([number]), [(low, high) for _code, low, high in buckets])[0]
    return Outcome(buckets[choice][0] if choice >= 0 else None, number, declared)


def outcome_of(spec: TagSpec, series: pd.Series) -> Outcome:
    """The person's value (a one-row Series) as a batch computation stores it: booleans
    as ``true`` / ``false``, enum codes (an empty text is no value), numbers with the
    code of their bucket."""
    value = series.iloc[0]
    declared = bm.declared_values(spec.value_type, spec.values)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return Outcome(None, None, declared)
    if spec.value_type == "boolean":
        return Outcome(services.value_text(bool(value)), None, declared)
    if spec.value_type == "number":
        return _number_outcome(spec, series, declared)
    text = str(fr.texts(series).iloc[0])
    return Outcome(text if text.strip() else None, None, declared)


def _same_number(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a == b


def _differs(result: StoredResult | None, outcome: Outcome, oneid: int, value_type: str) -> bool:
    if result is None:
        return outcome.label is not None or outcome.number is not None
    if result.label(oneid) != outcome.label:
        return True
    return value_type == "number" and not _same_number(result.number(oneid), outcome.number)


# ---------------------------------------------------------------------------
# Storing the values that changed


def store_new_values(
    realtime: RealtimeSpecs,
    oneid: int,
    outcomes: Mapping[int, Outcome],
    current: Mapping[int, StoredResult],
    person_created: bool,
) -> tuple[list[TagChange], dict[int, str]]:
    """Move the person between the bitmaps of the tags whose value changed: their
    results are locked, re-read if another event updated them since ``current`` was
    read, and written back with a new ``last_calculated_at``. Answers the changes and
    the tags left alone (``{tag id: why}``)."""
    changed, skipped = _tags_to_update(realtime, oneid, outcomes, current)
    if not changed:
        return [], skipped
    results = _locked_results(changed, current)
    now = timezone.now()
    written = _Written()
    changes = []
    for tag_id in changed:
        change = _store_value(
            realtime.tags[tag_id], outcomes[tag_id], results[tag_id], oneid, person_created, now, written
        )
        if change is not None:
            changes.append(change)
    written.remember_on_commit()
    return changes, skipped


def _tags_to_update(
    realtime: RealtimeSpecs, oneid: int, outcomes: Mapping[int, Outcome], current: Mapping[int, StoredResult]
) -> tuple[list[int], dict[int, str]]:
    """The tags whose stored value of the person differs from their outcome (by tag id),
    and those whose stored result cannot take it (another value type)."""
    changed: list[int] = []
    skipped: dict[int, str] = {}
    for tag_id, outcome in sorted(outcomes.items()):
        result = current.get(tag_id)
        value_type = realtime.tags[tag_id].spec.value_type
        if result is not None and result.has_result and result.value_type != value_type:
            skipped[tag_id] = _("The stored result has another value type; compute the tag again.")
        elif _differs(result, outcome, oneid, value_type):
            changed.append(tag_id)
    return changed, skipped


def _lock_computations(tag_ids: list[int]) -> dict[int, StoredResult]:
    """The tags' computations, created when missing, locked in pk order."""

    def locked(ids):
        query = TagComputation.objects.select_for_update().filter(tag_id__in=ids).order_by("pk")
        return {row[1]: StoredResult(*row) for row in query.values_list(*_STORED_FIELDS)}

    found = locked(tag_ids)
    missing = [tag_id for tag_id in tag_ids if tag_id not in found]
    if missing:
        TagComputation.objects.bulk_create(
            [TagComputation(tag_id=tag_id) for tag_id in missing], ignore_conflicts=True
        )
        found.update(locked(missing))
    return found


def _locked_results(tag_ids: list[int], current: Mapping[int, StoredResult]) -> dict[int, StoredResult]:
    """The tags' results, locked: as read in ``current`` when nobody changed them since,
    else read again (with their bitmaps); counts as they are under the lock."""
    locked = _lock_computations(tag_ids)
    stale = [
        result
        for tag_id, result in locked.items()
        if tag_id not in current or current[tag_id].last_calculated_at != result.last_calculated_at
    ]
    fresh = {result.tag_id: result for result in _with_bitmaps(stale)}
    results = {}
    for tag_id in tag_ids:
        result = fresh.get(tag_id) or current[tag_id]
        result.population, result.distribution = locked[tag_id].population, locked[tag_id].distribution
        results[tag_id] = result
    return results


def _store_value(
    tag: RealtimeTag,
    outcome: Outcome,
    result: StoredResult,
    oneid: int,
    person_created: bool,
    now: dt.datetime,
    written: _Written,
) -> TagChange | None:
    """Store the person's new value of one tag (its result locked): the bitmaps that
    changed, then counts, coverage and numbers. None when the value is what is stored
    (another event stored it meanwhile)."""
    value_type = tag.spec.value_type
    old_label, old_number = result.label(oneid), result.number(oneid)
    if old_label == outcome.label and (value_type != "number" or _same_number(old_number, outcome.number)):
        return None
    maps, dirty = _moved_bitmaps(result, outcome, oneid)
    stamp = (
        now if result.last_calculated_at is None else max(now, result.last_calculated_at + ONE_MICROSECOND)
    )
    pks = _write_bitmaps(result, maps, dirty)
    written.bitmaps.update({(pk, stamp): maps[value] for value, pk in pks.items()})
    update = _result_summary(tag, result, maps, dirty, person_created)
    held_numbers = 0
    if value_type == "number":
        numbers = _with_number(result.numbers(), oneid, outcome.number)
        update["numbers"] = _packed_numbers(numbers)
        held_numbers = len(numbers)
        written.numbers[(result.pk, stamp)] = numbers
    update["coverage"] = bm.coverage(value_type, update["distribution"], held_numbers, update["population"])
    TagComputation.objects.filter(pk=result.pk).update(last_calculated_at=stamp, **update)
    return TagChange(
        tag_id=tag.tag_id,
        code=tag.code,
        name=tag.name,
        old=_typed(old_label, old_number, value_type),
        new=_typed(outcome.label, outcome.number, value_type),
        version=result.version if result.has_result else tag.version,
    )


def _moved_bitmaps(result: StoredResult, outcome: Outcome, oneid: int) -> tuple[dict[str, BitMap], set[str]]:
    """The result's bitmaps with the person moved to the outcome's value, and the values
    whose bitmap changed (or is new: a first result gets one per declared value)."""
    person = BitMap([oneid])
    old_label = result.label(oneid)
    maps = dict(result.maps)
    dirty = set()
    if not result.has_result:
        for value in outcome.declared:
            maps.setdefault(value, BitMap())
        dirty |= {value for value in maps if value not in result.rows}
    if old_label is not None and old_label != outcome.label:
        maps[old_label] = maps[old_label] - person
        dirty.add(old_label)
    if outcome.label is not None and outcome.label != old_label:
        maps[outcome.label] = maps.get(outcome.label, BitMap()) | person
        dirty.add(outcome.label)
    return maps, dirty


def _write_bitmaps(result: StoredResult, maps: Mapping[str, BitMap], dirty: set[str]) -> dict[str, int]:
    """Write the bitmaps of the ``dirty`` values (new rows for new values); answers the
    row pk of every value of the result."""
    created = []
    for value in sorted(dirty):
        data, count = bm.serialize(maps[value]), len(maps[value])
        if value in result.rows:
            TagValueBitmap.objects.filter(pk=result.rows[value]).update(bitmap=data, count=count)
        else:
            created.append(TagValueBitmap(computation_id=result.pk, value=value, bitmap=data, count=count))
    if created:
        TagValueBitmap.objects.bulk_create(created)
    pks = dict(result.rows)
    pks.update({row.value: row.pk for row in created if row.pk is not None})
    return pks


def _result_summary(
    tag: RealtimeTag, result: StoredResult, maps: Mapping[str, BitMap], dirty: set[str], person_created: bool
) -> dict:
    """The fields of the computation that follow its bitmaps: distribution, population
    (one more for a new person) and, for a first result, its version and value type."""
    distribution = dict(result.distribution or {}) if result.has_result else {}
    distribution.update({value: len(maps[value]) for value in dirty})
    population = result.population if result.has_result else None
    if population is not None and person_created:
        population += 1
    summary = {"distribution": distribution, "population": population}
    if not result.has_result:
        summary.update(version=tag.version, value_type=tag.spec.value_type, errors_calculating=0)
    return summary


def _with_number(numbers: pd.Series, oneid: int, number: float | None) -> pd.Series:
    """A copy of a number tag's numbers with the person's number set (or dropped)."""
    if number is None:
        updated = numbers.drop(index=[oneid], errors="ignore")
    elif oneid in numbers.index:
        updated = numbers.copy()
        updated.loc[oneid] = number
    else:
        updated = pd.concat([numbers, pd.Series([number], index=[oneid])]).sort_index()
    updated.index = pd.Index(updated.index.to_numpy(dtype="int64"), name="oneid")
    return updated
