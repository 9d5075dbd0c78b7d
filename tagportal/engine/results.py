"""The engine's public results API: what other apps read from the engine, with plain
inputs and outputs (ids, codes, dicts, bitmaps, Series).

- **Published specs**: :func:`spec_of`, :func:`published_snapshots`,
  :func:`published_specs` — tags as their published snapshots define them, which is
  what the engine computes (never the live, possibly draft-edited fields).
- **Evaluating without storing**: :func:`evaluate_specs` evaluates tag specs on a
  brand's data now, in one pass as a batch computation does, and writes nothing (no
  result, no run, no computation state); :func:`known_values` are the stored results
  such an evaluation reads. An outcome's coverage is computed the one way stored
  coverage is (:func:`coverage`).
- **Stored results**: :func:`values_for` (people's current values),
  :func:`result_states` (coverage, distribution, drift and computation state of many
  tags), :func:`result_stamps`, :func:`newest_result_at`, :func:`result_bitmaps` and
  :func:`result_numbers` (a result's bitmaps and numbers, for set algebra),
  :func:`value_counts` and :func:`value_bitmaps` (reports over many tags).
- **Writing values computed elsewhere**: :func:`store_values` stores a Series of
  values (a model's scores) as a published tag's current result, as a run would;
  :class:`ValuesRefused` when the tag cannot hold them.
- **Scheduling**: :func:`last_fire`, the latest moment a cron expression names.
- **Quality**: :func:`mean_run_seconds`, :func:`drift_threshold`.

Deserialized bitmaps and numbers are kept in one per-process cache: :data:`BITMAPS`
under (bitmap row pk, its result's ``last_calculated_at``), :data:`NUMBERS` under
(computation pk, ``last_calculated_at``). Every new result (a batch swap, a realtime
change) moves ``last_calculated_at`` on, so a recomputed tag is read again and an
unchanged one is never read twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from django.db.models import Avg, Max
from django.db.models.functions import Coalesce
from django.utils import timezone
from pyroaring import BitMap

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Tag
from tagportal.core.caches import LRU

from . import bitmaps as bm
from . import services
from .bitmaps import coverage, declared_values
from .evaluate import TagSpec
from .models import RunStatus, TagComputation, TagRun, TagValueBitmap, unpack_numbers
from .services import (
    PartialResult,
    PeakMemory,
    TagOutcome,
    ValuesRefused,
    drift_threshold,
    known_values,
    last_fire,
    published_snapshots,
    spec_of,
    store_values,
    typed_value,
    value_text,
)

__all__ = [
    "BITMAPS",
    "NUMBERS",
    "PartialResult",
    "PeakMemory",
    "TagOutcome",
    "TagSpec",
    "ValuesRefused",
    "coverage",
    "declared_values",
    "drift_threshold",
    "evaluate_specs",
    "known_values",
    "last_fire",
    "mean_run_seconds",
    "newest_result_at",
    "published_snapshots",
    "published_specs",
    "remember_bitmaps",
    "remember_numbers",
    "result_bitmaps",
    "result_numbers",
    "result_stamps",
    "result_states",
    "spec_of",
    "store_values",
    "stored_bitmaps",
    "typed_value",
    "value_bitmaps",
    "value_counts",
    "value_text",
    "values_for",
]

#: Deserialized bitmaps kept per process, by (bitmap row pk, last_calculated_at).
BITMAPS = LRU(1024)
#: Unpacked numbers of number tags kept per process, by (computation pk, last_calculated_at).
NUMBERS = LRU(64)
#: Tags whose bitmaps :func:`value_bitmaps` reads in one query.
BITMAP_CHUNK = 200

#: What :func:`result_states` gives of each tag's computation.
STATE_FIELDS = (
    "version",
    "value_type",
    "pending_version",
    "is_calculating",
    "last_calculated_at",
    "errors_calculating",
    "last_error",
    "last_error_at",
    "population",
    "coverage",
    "distribution",
    "psi",
    "drift_flag",
)


# ---------------------------------------------------------------------------
# Published specs, and evaluating them without storing


def published_specs(tags: Sequence[Tag]) -> dict[int, TagSpec]:
    """``{tag id: TagSpec}`` of the tags' published snapshots (tags whose published
    version is missing are left out). One query."""
    return {tag_id: spec_of(version) for tag_id, version in published_snapshots(tags).items()}


def evaluate_specs(brand, specs: Mapping[int, TagSpec], frames=None, as_of=None) -> PartialResult:
    """Evaluate ``specs`` (``{key: TagSpec}``, e.g. tag ids) on the brand's data now, in
    one pass, reading the stored results of the tags they read but that are not among
    them. Nothing is stored. ``frames`` (``(profiles, events, orders)``) are loaded from
    the profiles app when not given; ``as_of`` is now when not given. Each outcome
    gives its bitmaps, numbers, distribution and coverage."""
    brand = services.resolve_brand(brand)
    if frames is None:
        frames = services.load_frames(brand)
    known = known_values(brand, specs) if specs else {}
    return services.evaluate_partition(specs, frames, as_of or timezone.now(), None, known)


# ---------------------------------------------------------------------------
# The cache of stored bitmaps and numbers


def stored_bitmaps(keys: Mapping[int, object]) -> dict[int, BitMap]:
    """Deserialized bitmaps by row pk (``keys``: row pk → its result's
    ``last_calculated_at``), from the cache or one query. Rows deleted meanwhile (a
    result swapped in) are left out."""
    found, missing = BITMAPS.get_many(keys.items())
    out = {pk: bitmap for (pk, _stamp), bitmap in found.items()}
    if missing:
        loaded = {
            pk: bm.deserialize(bytes(raw))
            for pk, raw in TagValueBitmap.objects.filter(pk__in=[pk for pk, _stamp in missing]).values_list(
                "pk", "bitmap"
            )
        }
        BITMAPS.update({(pk, keys[pk]): bitmap for pk, bitmap in loaded.items()})
        out.update(loaded)
    return out


def remember_bitmaps(entries: Mapping[tuple[int, object], BitMap]) -> None:
    """Cache bitmaps just written, under (row pk, the result's new
    ``last_calculated_at``): call it once the transaction committed."""
    BITMAPS.update(entries)


def result_numbers(keys: Mapping[int, object]) -> dict[int, pd.Series | None]:
    """The numbers of number tags' results (a float Series indexed by OneID, None
    without numbers) by computation pk (``keys``: computation pk → its
    ``last_calculated_at``), from the cache or one query."""
    found, missing = NUMBERS.get_many(keys.items())
    out = {pk: numbers for (pk, _stamp), numbers in found.items()}
    if missing:
        loaded = {}
        rows = TagComputation.objects.filter(pk__in=[pk for pk, _stamp in missing]).values_list(
            "pk", "last_calculated_at", "numbers"
        )
        for pk, stamp, raw in rows:
            out[pk] = loaded[(pk, stamp)] = unpack_numbers(raw)
        NUMBERS.update(loaded)
    return out


def remember_numbers(entries: Mapping[tuple[int, object], pd.Series]) -> None:
    """Cache numbers just written, under (computation pk, the new
    ``last_calculated_at``): call it once the transaction committed."""
    NUMBERS.update(entries)


def result_bitmaps(keys: Mapping[int, object]) -> dict[int, dict[str, BitMap]]:
    """``{computation pk: {value: BitMap}}`` of results (``keys``: computation pk → its
    ``last_calculated_at``): one query for the rows, bitmaps from the cache."""
    rows = list(
        TagValueBitmap.objects.filter(computation_id__in=list(keys)).values_list(
            "pk", "computation_id", "value"
        )
    )
    maps = stored_bitmaps({pk: keys[computation_id] for pk, computation_id, _value in rows})
    out: dict[int, dict[str, BitMap]] = {pk: {} for pk in keys}
    for pk, computation_id, value in rows:
        if pk in maps:
            out[computation_id][value] = maps[pk]
    return out


# ---------------------------------------------------------------------------
# Stored results


def result_stamps(tag_ids: Iterable[int]) -> dict[int, tuple[int, dt.datetime, int]]:
    """``{tag id: (computation pk, last_calculated_at, result version)}`` of the tags
    that have a result. One query."""
    rows = TagComputation.objects.filter(tag_id__in=list(tag_ids), version__isnull=False).values_list(
        "tag_id", "pk", "last_calculated_at", "version"
    )
    return {tag_id: (pk, stamp, version) for tag_id, pk, stamp, version in rows}


def newest_result_at(brand_id: int) -> dt.datetime | None:
    """When the brand's newest result was computed (None before any)."""
    found = TagComputation.objects.filter(tag__brand_id=brand_id).aggregate(at=Max("last_calculated_at"))
    return found["at"]


def result_states(tag_ids) -> dict[int, dict]:
    """``{tag id: {field: value}}`` of :data:`STATE_FIELDS` for each tag with a
    computation (``version`` is None while it has no result). ``tag_ids``: ids or a
    queryset of them. One query."""
    rows = TagComputation.objects.filter(tag__in=tag_ids).order_by().values("tag_id", *STATE_FIELDS)
    return {row["tag_id"]: row for row in rows}


def value_counts(tag_ids) -> dict[int, dict[str, int]]:
    """``{tag id: {value: people}}`` of the stored results, values in order; no bitmap
    is read. ``tag_ids``: ids or a queryset of them. One query."""
    rows = (
        TagValueBitmap.objects.filter(computation__tag__in=tag_ids)
        .order_by("computation__tag_id", "value")
        .values_list("computation__tag_id", "value", "count")
    )
    out: dict[int, dict[str, int]] = {}
    for tag_id, value, count in rows:
        out.setdefault(tag_id, {})[value] = count
    return out


def value_bitmaps(tag_ids: Sequence[int], true_only: Collection[int] = ()) -> dict[int, dict[str, BitMap]]:
    """``{tag id: {value: BitMap}}`` of the stored results, read straight from the
    database (not cached: for reports that read many tags once); for the tags in
    ``true_only`` (yes/no tags) only who holds them, the ``true`` bitmap. One query per
    :data:`BITMAP_CHUNK` tags."""
    tag_ids = list(tag_ids)
    out: dict[int, dict[str, BitMap]] = {}
    for lo in range(0, len(tag_ids), BITMAP_CHUNK):
        rows = TagValueBitmap.objects.filter(
            computation__tag_id__in=tag_ids[lo : lo + BITMAP_CHUNK]
        ).values_list("computation__tag_id", "value", "bitmap")
        for tag_id, value, data in rows:
            if tag_id in true_only and value != "true":
                continue
            out.setdefault(tag_id, {})[value] = bm.deserialize(bytes(data))
    return out


def values_for(
    brand, oneids: Iterable[int], codes: Iterable[str] | None = None
) -> dict[int, dict[str, dict]]:
    """The current tag values of some people of a brand::

        {oneid: {tag code: {"value": ..., "version": 3, "computed_at": datetime}}}

    Boolean tags give True / False, enum tags the value code, number tags the number
    (and ``"bucket"``: the code of its bucket, if any). Every requested OneID is a key;
    people without values get an empty dict."""
    brand = services.resolve_brand(brand)
    ids = sorted({int(i) for i in oneids})
    out: dict[int, dict[str, dict]] = {i: {} for i in ids}
    valid = np.array([i for i in ids if 0 <= i <= bm.MAX_ONEID], dtype="int64")
    if not len(valid):
        return out
    query = bm.bitmap(valid)
    computations = TagComputation.objects.filter(tag__brand=brand, version__isnull=False).exclude(
        tag__status=TagStatus.RETIRED
    )
    if codes is not None:
        computations = computations.filter(tag__code__in=list(codes))
    computations = {c.pk: c for c in computations.select_related("tag").defer("numbers")}
    rows = list(
        TagValueBitmap.objects.filter(computation_id__in=list(computations)).values_list(
            "pk", "computation_id", "value"
        )
    )
    maps = stored_bitmaps({pk: computations[c].last_calculated_at for pk, c, _v in rows})
    for pk, computation_id, value in rows:
        computation = computations[computation_id]
        hits = query & maps[pk] if pk in maps else None
        if not hits:
            continue
        typed = typed_value(value, computation.value_type)
        key = "bucket" if computation.value_type == "number" else "value"
        for oneid in hits:
            entry = out[oneid].setdefault(
                computation.tag.code,
                {"version": computation.version, "computed_at": computation.last_calculated_at},
            )
            entry[key] = typed
    numeric = [c for c in computations.values() if c.value_type == "number"]
    if numeric:
        numbers = result_numbers({c.pk: c.last_calculated_at for c in numeric})
        for computation in numeric:
            series = numbers.get(computation.pk)
            if series is None or series.empty:
                continue
            found = series[series.index.isin(valid)]
            for oneid, number in found.items():
                entry = out[int(oneid)].setdefault(
                    computation.tag.code,
                    {"version": computation.version, "computed_at": computation.last_calculated_at},
                )
                entry["value"] = float(number)
    return out


# ---------------------------------------------------------------------------
# Quality


def mean_run_seconds(tag_ids, since: dt.datetime, until: dt.datetime) -> dict[int, float]:
    """``{tag id: mean seconds}`` of the successful runs started in ``[since, until)``:
    each run's share of the evaluation, else its whole duration. ``tag_ids``: ids or a
    queryset of them. One query."""
    rows = (
        TagRun.objects.filter(
            tag__in=tag_ids, status=RunStatus.SUCCESS, started_at__gte=since, started_at__lt=until
        )
        .order_by()
        .values("tag_id")
        .annotate(mean=Avg(Coalesce("evaluate_s", "duration_s")))
    )
    return {row["tag_id"]: float(row["mean"]) for row in rows if row["mean"] is not None}
