"""Batch computation of tag results: the one place that loads data, calls the engine
and persists results (see :mod:`.evaluate` for the rules, :mod:`.bitmaps` for the
storage format).

The computation state follows PostHog's versioned computations:

- :func:`enqueue_compute` bumps ``pending_version`` of the tags' computations and,
  once the transaction commits, queues a task with that number;
- :func:`compute_brand` evaluates the brand's published tags in one pass (shared
  aggregations are computed once), from their **published snapshots**, never from
  the live (possibly draft-edited) fields; a tag whose ``pending_version`` moved past
  the task's number is *superseded*: a newer request will compute it, so this one
  records a superseded run and leaves it alone;
- the result of each tag (one bitmap per value, plus numbers for number tags) is
  swapped in atomically, only when the tag computed; a failing tag keeps its previous
  result and gets a failed run, an error counter and a back-off before the scheduler
  tries it again;
- work can be split by OneID range (``partitions``): each range is evaluated alone
  and the bitmaps are OR-merged, which gives exactly the unpartitioned result;
- :func:`reset_stuck` gives up on computations that hung.

Other apps read results, published specs and quality numbers through
:mod:`.results`, the engine's public results API.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import resource
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from croniter import CroniterBadDateError, croniter
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from pyroaring import BitMap

from tagportal.catalog.choices import RefreshMode
from tagportal.catalog.models import Brand, Tag, TagVersion
from tagportal.catalog.restructure import current_references
from tagportal.core import background
from tagportal.core.claims import pause_point
from tagportal.core.days import BEIJING
from tagportal.profiles import loaders
from tagportal.rules.definitions import tag_references

from . import bitmaps as bm
from . import frames as fr
from . import parallel, partitioning
from .choices import FINAL_STATUSES
from .evaluate import TagSpec, evaluate_tags
from .models import (
    DRIFT_PSI_THRESHOLD,
    RunStatus,
    TagComputation,
    TagRun,
    TagValueBitmap,
    pack_numbers,
    unpack_numbers,
)
from .signals import results_updated

log = logging.getLogger(__name__)

#: A computation still "calculating" after this long is taken to have hung.
STUCK_AFTER = dt.timedelta(hours=2)
#: After n failures in a row the scheduler waits BACKOFF_BASE * 2**(n-1), at most BACKOFF_MAX.
BACKOFF_BASE = dt.timedelta(minutes=5)
BACKOFF_MAX = dt.timedelta(hours=24)
#: The OneID ranges of partitioned work cover every 32-bit OneID.
ONEID_END = bm.MAX_ONEID + 1


def drift_threshold() -> float:
    return float(getattr(settings, "TAGPORTAL_DRIFT_PSI", DRIFT_PSI_THRESHOLD))


# ---------------------------------------------------------------------------
# Small helpers


def resolve_brand(brand) -> Brand:
    """A brand from a Brand, its primary key or its code."""
    if isinstance(brand, Brand):
        return brand
    if isinstance(brand, int):
        return Brand.objects.get(pk=brand)
    return Brand.objects.get(code=brand)


def value_text(key) -> str:
    """How a value is stored: booleans as ``true`` / ``false``, codes as they are."""
    if isinstance(key, bool | np.bool_):
        return "true" if key else "false"
    return str(key)


def typed_value(text: str, value_type: str):
    """The inverse of :func:`value_text` for a result of ``value_type``."""
    if value_type == "boolean":
        return text == "true"
    return text


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


class PeakMemory:
    """The peak resident memory of this process during a block, in MB.

    On Linux the high-water mark is reset at the start (``/proc/self/clear_refs``), so
    the peak is this block's; elsewhere it is the process's peak so far
    (``getrusage``)."""

    def __enter__(self):
        try:
            with open("/proc/self/clear_refs", "w") as handle:
                handle.write("5")
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        return False

    @staticmethod
    def peak_mb() -> float:
        try:
            with open("/proc/self/status") as handle:
                for line in handle:
                    if line.startswith("VmHWM:"):
                        return round(int(line.split()[1]) / 1024, 1)
        except (OSError, ValueError, IndexError):
            pass
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------------------
# Frames and partitions (no ORM)


def split_frames(frames) -> tuple:
    """``(profiles, events, orders)`` from a tuple or a mapping with those keys."""
    if isinstance(frames, Mapping):
        return frames.get("profiles"), frames.get("events"), frames.get("orders")
    profiles, events, orders = frames
    return profiles, events, orders


def rows_in(frames) -> int:
    return sum(len(frame) for frame in split_frames(frames) if frame is not None)


def population_of(frames) -> pd.Index:
    """The sorted union of the OneIDs of the three frames (what :func:`.evaluate_tags` uses)."""
    profiles, events, orders = split_frames(frames)
    parts = [fr.profile_frame(profiles).index.to_numpy(dtype="int64")]
    for frame, source in ((events, "events"), (orders, "orders")):
        frame = fr.activity_frame(frame, source)
        ids, valid = fr.oneids(frame["oneid"])
        parts.append(ids[valid])
    return fr.default_population(*parts)


def split_ranges(population: Sequence[int] | pd.Index, partitions: int) -> list[tuple[int, int]]:
    """Half-open OneID ranges ``[lo, hi)`` holding about the same number of people each,
    covering every OneID (the first starts at 0, the last ends after the largest OneID)."""
    ids = np.unique(np.asarray(population, dtype="int64"))
    partitions = max(1, int(partitions))
    if partitions == 1 or len(ids) <= 1:
        return [(0, ONEID_END)]
    chunks = [chunk for chunk in np.array_split(ids, min(partitions, len(ids))) if len(chunk)]
    starts = [0, *(int(chunk[0]) for chunk in chunks[1:])]
    ends = [*starts[1:], ONEID_END]
    return list(zip(starts, ends, strict=True))


def bounds_ranges(low: int | None, high: int | None, partitions: int) -> list[tuple[int, int]]:
    """Equal-width half-open ranges between the smallest and largest OneID (inclusive),
    the first extended down to 0 and the last up to the end of the OneID space."""
    partitions = max(1, int(partitions))
    if low is None or high is None or partitions == 1 or high <= low:
        return [(0, ONEID_END)]
    edges = np.unique(np.linspace(low, high + 1, partitions + 1).astype("int64"))
    starts = [0, *(int(e) for e in edges[1:-1])]
    ends = [*starts[1:], ONEID_END]
    return list(zip(starts, ends, strict=True))


def slice_frames(frames, lo: int, hi: int) -> tuple:
    """The rows of people whose OneID is in ``[lo, hi)``."""
    profiles, events, orders = split_frames(frames)
    profiles = fr.profile_frame(profiles)
    index = profiles.index.to_numpy(dtype="int64")
    out = [profiles[(index >= lo) & (index < hi)]]
    for frame, source in ((events, "events"), (orders, "orders")):
        frame = fr.activity_frame(frame, source)
        ids, valid = fr.oneids(frame["oneid"])
        out.append(frame[valid & (ids >= lo) & (ids < hi)])
    return tuple(out)


@dataclass
class TagOutcome:
    """One tag's values over some people: bitmaps by value text, numbers for number tags."""

    bitmaps: dict[str, BitMap]
    numbers: pd.Series | None = None
    seconds: float = 0.0
    version: int | None = None

    @property
    def distribution(self) -> dict[str, int]:
        """``{value: number of people}``."""
        return bm.bitmap_distribution(self.bitmaps)

    def coverage(self, value_type: str, population: int) -> float:
        """The share of ``population`` holding the tag (:func:`.bitmaps.coverage`)."""
        numbers = len(self.numbers) if self.numbers is not None else 0
        return bm.coverage(value_type, self.distribution, numbers, population)


@dataclass
class PartialResult:
    """What evaluating tags over one OneID range (or everybody) gives."""

    population: int = 0
    rows_read: int = 0
    peak_memory_mb: float | None = None
    seconds: float = 0.0
    metrics_reused: int = 0
    outcomes: dict[int, TagOutcome] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    superseded: bool = False

    def to_json(self) -> dict:
        """A JSON-serialisable form (bytes as base64) for Celery."""
        return {
            "population": self.population,
            "rows_read": self.rows_read,
            "peak_memory_mb": self.peak_memory_mb,
            "seconds": self.seconds,
            "metrics_reused": self.metrics_reused,
            "superseded": self.superseded,
            "errors": {str(k): v for k, v in self.errors.items()},
            "outcomes": {
                str(tag_id): {
                    "bitmaps": {value: _b64(bm.serialize(b)) for value, b in out.bitmaps.items()},
                    "numbers": _b64(pack_numbers(out.numbers)),
                    "seconds": out.seconds,
                    "version": out.version,
                }
                for tag_id, out in self.outcomes.items()
            },
        }

    @classmethod
    def from_json(cls, data: Mapping) -> PartialResult:
        outcomes = {
            int(tag_id): TagOutcome(
                bitmaps={value: bm.deserialize(_unb64(raw)) for value, raw in out["bitmaps"].items()},
                numbers=unpack_numbers(_unb64(out.get("numbers"))),
                seconds=float(out.get("seconds") or 0.0),
                version=out.get("version"),
            )
            for tag_id, out in (data.get("outcomes") or {}).items()
        }
        return cls(
            population=int(data.get("population") or 0),
            rows_read=int(data.get("rows_read") or 0),
            peak_memory_mb=data.get("peak_memory_mb"),
            seconds=float(data.get("seconds") or 0.0),
            metrics_reused=int(data.get("metrics_reused") or 0),
            superseded=bool(data.get("superseded")),
            errors={int(k): v for k, v in (data.get("errors") or {}).items()},
            outcomes=outcomes,
        )


def evaluate_partition(
    specs: Mapping[int, TagSpec],
    frames,
    as_of,
    population: pd.Index | None = None,
    known: Mapping[str, pd.Series] | None = None,
    versions: Mapping[int, int] | None = None,
) -> PartialResult:
    """Evaluate tags (``{tag id: TagSpec}``) over frames in one pass and turn the values
    into bitmaps and numbers. Plain pandas: no ORM."""
    profiles, events, orders = split_frames(frames)
    if population is None:
        population = population_of(frames)
    started = time.perf_counter()
    with PeakMemory() as memory:
        result = evaluate_tags(list(specs.values()), profiles, events, orders, as_of, population, known=known)
        part = PartialResult(
            population=len(result.population),
            rows_read=rows_in(frames),
            metrics_reused=result.metrics_reused,
        )
        for tag_id, spec in specs.items():
            if spec.code in result.errors:
                part.errors[tag_id] = result.errors[spec.code]
                continue
            series = result.values.get(spec.code)
            if series is None:
                part.errors[tag_id] = _("The tag was not evaluated.")
                continue
            if spec.value_type == "enum":
                # An empty text is no value (evaluate's attribute tags pass it through).
                series = series.mask(series.fillna("").astype(str).str.strip() == "")
            try:
                maps = {value_text(k): b for k, b in bm.to_bitmaps(series, spec.values).items()}
                numbers = bm.numbers(series) if spec.value_type == "number" else None
            except (ValueError, TypeError) as exc:
                part.errors[tag_id] = f"{type(exc).__name__}: {exc}"
                continue
            part.outcomes[tag_id] = TagOutcome(
                maps, numbers, result.seconds.get(spec.code, 0.0), (versions or {}).get(tag_id)
            )
        part.peak_memory_mb = memory.peak_mb()
    part.seconds = time.perf_counter() - started
    return part


def merge_partials(parts: Iterable[PartialResult]) -> PartialResult:
    """OR-merge the results of disjoint OneID ranges into one (a tag failing in any
    range fails)."""
    parts = list(parts)
    merged = PartialResult(superseded=any(p.superseded for p in parts))
    peaks = [p.peak_memory_mb for p in parts if p.peak_memory_mb is not None]
    merged.peak_memory_mb = max(peaks) if peaks else None
    for part in parts:
        merged.population += part.population
        merged.rows_read += part.rows_read
        merged.seconds += part.seconds
        merged.metrics_reused += part.metrics_reused
        for tag_id, message in part.errors.items():
            merged.errors.setdefault(tag_id, message)
    tag_ids = {tag_id for p in parts for tag_id in p.outcomes}
    for tag_id in sorted(tag_ids - set(merged.errors)):
        outcomes = [p.outcomes.get(tag_id) for p in parts]
        if any(o is None for o in outcomes):
            merged.errors[tag_id] = _("A part of the people was not computed.")
            continue
        versions = {o.version for o in outcomes}
        if len(versions) > 1:
            merged.errors[tag_id] = _("The published version changed during the computation.")
            continue
        numbers = [o.numbers for o in outcomes if o.numbers is not None]
        merged.outcomes[tag_id] = TagOutcome(
            bitmaps=bm.merge_bitmaps(o.bitmaps for o in outcomes),
            numbers=pd.concat(numbers).sort_index() if numbers else None,
            seconds=sum(o.seconds for o in outcomes),
            version=versions.pop(),
        )
    return merged


# ---------------------------------------------------------------------------
# Loading data (the profiles app owns it)


def load_frames(brand: Brand, oneid_range: tuple[int, int] | None = None) -> tuple:
    """``(profiles, events, orders)`` of a brand from the profiles app; with
    ``oneid_range`` (``[lo, hi)``) only those people's rows, read by range."""
    return split_frames(loaders.load_frames(brand, oneid_range=oneid_range))


def oneid_bounds(brand: Brand) -> tuple[int | None, int | None]:
    """The smallest and largest OneID of a brand's people (to split them into ranges)."""
    return loaders.oneid_bounds(brand)


# ---------------------------------------------------------------------------
# Which tags, and their published snapshots


def _published_tags(brand: Brand, tag_ids=None):
    tags = Tag.objects.published().filter(brand=brand)
    if tag_ids is not None:
        tags = tags.filter(pk__in=list(tag_ids))
    return list(tags.order_by("code"))


def published_snapshots(tags: Sequence[Tag]) -> dict[int, TagVersion]:
    """``{tag id: its published TagVersion}`` (one query)."""
    if not tags:
        return {}
    condition = Q()
    for tag in tags:
        condition |= Q(tag_id=tag.pk, version=tag.published_version)
    return {v.tag_id: v for v in TagVersion.objects.filter(condition)}


def spec_of(version: TagVersion) -> TagSpec:
    """The tag as a published snapshot defines it, as the engine evaluates it. A tag it
    reads by an old code (kept as an alias after a restructure or a merge) is read by
    its current code; the snapshot is not changed."""
    snap = version.snapshot or {}
    return with_current_codes(
        version.tag.brand_id,
        TagSpec(
            code=snap.get("code") or version.tag.code,
            value_type=snap.get("value_type") or "",
            definition=snap.get("definition") or {},
            values=snap.get("values") or None,
        ),
    )


def with_current_codes(brand_id: int, spec: TagSpec) -> TagSpec:
    """``spec`` reading the tags it names by an old code under their current code."""
    if not tag_references(spec.definition):
        return spec
    definition, replaced = current_references(brand_id, spec.definition)
    return spec._replace(definition=definition) if replaced else spec


def _is_manual(spec: TagSpec) -> bool:
    return isinstance(spec.definition, dict) and spec.definition.get("type") == "manual"


def stored_series(computation: TagComputation) -> pd.Series | None:
    """A computation's current values as a Series indexed by OneID (None without a result)."""
    if not computation.has_result:
        return None
    if computation.value_type == "number":
        return computation.number_series()
    maps = {
        typed_value(row.value, computation.value_type): bm.deserialize(bytes(row.bitmap))
        for row in computation.bitmaps.all()
    }
    return bm.to_series(maps, computation.value_type or None)


def known_values(brand: Brand, specs: Mapping[int, TagSpec]) -> dict[str, pd.Series]:
    """Stored results of the tags that the evaluated tags read but that are not evaluated
    here (manual tags' uploaded lists, tags not in this run)."""
    codes = {spec.code for spec in specs.values()}
    wanted = set()
    for spec in specs.values():
        wanted |= tag_references(spec.definition) - codes
    if not wanted:
        return {}
    known = {}
    computations = TagComputation.objects.filter(
        tag__brand=brand, tag__code__in=sorted(wanted), version__isnull=False
    ).select_related("tag")
    for computation in computations.prefetch_related("bitmaps"):
        series = stored_series(computation)
        if series is not None:
            known[computation.tag.code] = series
    # A published manual tag (uploaded lists, a model's outputs) with nothing stored yet:
    # nobody holds a value, rather than an unknown tag that fails the tags reading it.
    waiting = Tag.objects.published().filter(brand=brand, code__in=sorted(wanted - set(known)))
    for tag in waiting.only("code", "value_type", "definition"):
        if isinstance(tag.definition, dict) and tag.definition.get("type") == "manual":
            known[tag.code] = bm.to_series({}, tag.value_type or None)
    return known


# ---------------------------------------------------------------------------
# Claiming: pending versions and the "calculating" state


@dataclass
class Claim:
    tag: Tag
    computation_id: int
    version: TagVersion | None
    spec: TagSpec | None


@dataclass
class Plan:
    """Tags a run will compute, with their published snapshots."""

    brand: Brand
    pending_version: int
    started_at: dt.datetime
    claims: dict[int, Claim] = field(default_factory=dict)
    errors: dict[int, str] = field(default_factory=dict)
    superseded: list[int] = field(default_factory=list)
    superseded_runs: list[TagRun] = field(default_factory=list)
    partitions: int = 1

    @property
    def specs(self) -> dict[int, TagSpec]:
        return {tag_id: c.spec for tag_id, c in self.claims.items() if tag_id not in self.errors}

    @property
    def versions(self) -> dict[int, int]:
        return {tag_id: c.version.version for tag_id, c in self.claims.items() if c.version is not None}


def _ensure_computations(tags: Sequence[Tag]) -> None:
    existing = set(TagComputation.objects.filter(tag__in=tags).values_list("tag_id", flat=True))
    missing = [TagComputation(tag=tag) for tag in tags if tag.pk not in existing]
    if missing:
        TagComputation.objects.bulk_create(missing, ignore_conflicts=True)


def _bump(brand: Brand, tags: Sequence[Tag]) -> int:
    """Give the tags' computations a new pending version, higher than any of the brand's."""
    _ensure_computations(tags)
    # Lock the brand's computations so two requests never get the same number.
    current = list(
        TagComputation.objects.select_for_update(of=("self",))
        .filter(tag__brand=brand)
        .order_by("pk")
        .values_list("pending_version", flat=True)
    )
    pending = max(current, default=0) + 1
    TagComputation.objects.filter(tag__in=tags).update(pending_version=pending)
    return pending


def _computable(tags: Sequence[Tag]) -> tuple[list[Tag], dict[int, TagVersion]]:
    """Tags with their snapshots, leaving out manual tags (their values are uploaded)."""
    versions = published_snapshots(tags)
    keep = [t for t in tags if t.pk not in versions or not _is_manual(spec_of(versions[t.pk]))]
    return keep, versions


def enqueue_compute(brand, tag_ids=None, partitions: int | None = None) -> int | None:
    """Request a computation of the brand's published tags (or of ``tag_ids`` among them).

    Bumps their ``pending_version`` and, once the transaction commits, queues the task
    (a chord of OneID ranges when ``partitions`` > 1; without ``partitions``, as many as
    the memory budget needs: :func:`.partitioning.partitions_for`). Returns the pending
    version, or None when there is nothing to compute."""
    from . import tasks

    brand = resolve_brand(brand)
    if partitions is None:
        partitions = partitioning.partitions_for(brand)
    with transaction.atomic():
        tags, _versions = _computable(_published_tags(brand, tag_ids))
        if not tags:
            return None
        pending = _bump(brand, tags)
        ids = [t.pk for t in tags]

        if partitions > 1:
            background.queue_after_commit(
                tasks.compute_brand_chord,
                brand.pk,
                pending,
                partitions,
                tag_ids=ids,
                queue=tasks.COMPUTE_QUEUE,
            )
        else:
            background.queue_after_commit(
                tasks.compute_brand_task, brand.pk, pending, tag_ids=ids, queue=tasks.COMPUTE_QUEUE
            )
    log.info("compute of %s requested as version %s (%s tags)", brand.code, pending, len(ids))
    return pending


def plan_compute(brand, tag_ids=None, pending_version: int | None = None, partitions: int = 1) -> Plan:
    """Claim tags for a run: the brand's published tags (or ``tag_ids`` among them).

    Without ``pending_version`` the run requests its own (so older queued requests give
    way to it). Tags whose pending version moved past the run's are superseded: a
    superseded run is recorded and they are left alone. The others are marked
    calculating."""
    brand = resolve_brand(brand)
    now = timezone.now()
    with transaction.atomic():
        tags, versions = _computable(_published_tags(brand, tag_ids))
        if pending_version is None:
            pending_version = _bump(brand, tags) if tags else 0
        else:
            _ensure_computations(tags)
        plan = Plan(brand=brand, pending_version=pending_version, started_at=now, partitions=partitions)
        # a redelivered task of a run that stored (or was abandoned) leaves those tags alone
        settled = settled_tags(brand.pk, pending_version, [t.pk for t in tags])
        tags = [t for t in tags if t.pk not in settled]
        computations = {
            c.tag_id: c
            for c in TagComputation.objects.select_for_update().filter(tag__in=tags).order_by("pk")
        }
        active = []
        for tag in tags:
            computation = computations[tag.pk]
            if computation.pending_version > pending_version:
                plan.superseded.append(tag.pk)
                continue
            version = versions.get(tag.pk)
            plan.claims[tag.pk] = Claim(tag, computation.pk, version, spec_of(version) if version else None)
            if version is None:
                plan.errors[tag.pk] = _("Published version %(n)s of the tag is missing.") % {
                    "n": tag.published_version
                }
            active.append(computation.pk)
        TagComputation.objects.filter(pk__in=active).update(is_calculating=True, calculation_started_at=now)
        if plan.superseded:
            by_id = {t.pk: t for t in tags}
            plan.superseded_runs = TagRun.objects.bulk_create(
                TagRun(
                    tag=by_id[tag_id],
                    brand=brand,
                    tag_version=by_id[tag_id].published_version,
                    pending_version=pending_version,
                    status=RunStatus.SUPERSEDED,
                    started_at=now,
                    finished_at=now,
                    duration_s=0.0,
                    partitions=partitions,
                    error=_("A newer computation was requested."),
                )
                for tag_id in plan.superseded
            )
    return plan


# ---------------------------------------------------------------------------
# Storing


def _previous_distribution(tag_id: int) -> dict | None:
    run = (
        TagRun.objects.filter(tag_id=tag_id, status=RunStatus.SUCCESS)
        .order_by("-started_at", "-pk")
        .values_list("distribution", flat=True)
        .first()
    )
    return run or None


def settled_tags(brand_id: int, pending_version: int, tag_ids) -> set[int]:
    """The tags whose part in the run ``pending_version`` of a brand is over for good (a
    success, superseded or abandoned run is recorded): the run's id is its pending version."""
    if not pending_version:
        return set()
    return set(
        TagRun.objects.filter(
            brand_id=brand_id,
            pending_version=pending_version,
            tag_id__in=list(tag_ids),
            status__in=FINAL_STATUSES,
        ).values_list("tag_id", flat=True)
    )


def store_results(plan: Plan, merged: PartialResult, finished_at: dt.datetime | None = None) -> list[TagRun]:
    """Write each claimed tag's outcome: swap its bitmaps and numbers in and record a run;
    a tag with an error keeps its previous result; a tag whose pending version moved on
    meanwhile is superseded.

    All or nothing: every tag of the run is written in one transaction, so readers see
    the brand's results all of the previous run or all of this one, and a worker killed
    while storing leaves the previous ones. Idempotent by run: a tag whose run (its
    pending version) already has a final run row (a redelivered merge) is left alone."""
    finished_at = finished_at or timezone.now()
    duration = (finished_at - plan.started_at).total_seconds()
    runs = []
    swapped = []
    errors = {**merged.errors, **plan.errors}
    with transaction.atomic():
        ids = sorted(c.computation_id for c in plan.claims.values())
        locked = {
            c.pk: c
            for c in TagComputation.objects.select_for_update()
            .defer("numbers")
            .filter(pk__in=ids)
            .order_by("pk")
        }
        settled = settled_tags(plan.brand.pk, plan.pending_version, plan.claims)
        for tag_id, claim in plan.claims.items():
            computation = locked.get(claim.computation_id)
            if computation is None or tag_id in settled:
                continue
            run = TagRun(
                tag_id=tag_id,
                brand=plan.brand,
                tag_version=claim.version.version if claim.version else claim.tag.published_version,
                pending_version=plan.pending_version,
                started_at=plan.started_at,
                finished_at=finished_at,
                duration_s=duration,
                rows_read=merged.rows_read,
                peak_memory_mb=merged.peak_memory_mb,
                population=merged.population,
                partitions=plan.partitions,
            )
            outcome = merged.outcomes.get(tag_id)
            if computation.pending_version > plan.pending_version or (
                merged.superseded and outcome is None and tag_id not in errors
            ):
                run.status = RunStatus.SUPERSEDED
                run.error = _("A newer computation was requested.")
            elif tag_id in errors or outcome is None:
                message = errors.get(tag_id) or _("The tag was not computed.")
                run.status, run.error = RunStatus.FAILED, message
                TagComputation.objects.filter(pk=computation.pk).update(
                    is_calculating=False,
                    errors_calculating=F("errors_calculating") + 1,
                    last_error=message,
                    last_error_at=finished_at,
                )
            else:
                _swap(computation, claim, outcome, merged.population, run, finished_at)
                swapped.append(tag_id)
                if len(swapped) == 1:
                    pause_point("engine.store")  # test hook: a kill here must leave no tag written
            run.save()
            runs.append(run)
        if swapped:  # readers of these results (audiences) refresh once they are committed
            brand_id = plan.brand.pk
            transaction.on_commit(
                lambda: results_updated.send_robust(sender=TagComputation, brand_id=brand_id, tag_ids=swapped)
            )
    return runs


def abandon_run(
    brand_id: int,
    pending_version: int,
    tag_ids,
    *,
    partitions: int = 1,
    started_at=None,
    message: str = "",
    requeue: bool = True,
) -> tuple[list[TagRun], int | None]:
    """Record the run ``pending_version`` of a brand as abandoned (its worker died): each
    of its tags without a final run row gets an abandoned run and keeps its previous
    result; those still waiting for this run stop calculating and, when ``requeue``, are
    requested again (a new pending version, queued on commit). Safe to call twice.
    Answers the runs recorded and the new pending version (None when nothing was queued)."""
    now = timezone.now()
    message = message or _("The worker running the computation was lost.")
    brand = resolve_brand(int(brand_id))
    with transaction.atomic():
        chosen = Q(tag_id__in=list(tag_ids)) if tag_ids else Q(pending_version=pending_version)
        computations = list(
            TagComputation.objects.select_for_update()
            .defer("numbers")
            .filter(chosen, tag__brand=brand)
            .select_related("tag")
            .order_by("pk")
        )
        settled = settled_tags(brand.pk, pending_version, [c.tag_id for c in computations])
        runs, again = [], []
        for computation in computations:
            if computation.tag_id in settled:
                continue
            started = started_at or computation.calculation_started_at or now
            runs.append(
                TagRun(
                    tag=computation.tag,
                    brand=brand,
                    tag_version=computation.tag.published_version,
                    pending_version=pending_version,
                    status=RunStatus.ABANDONED,
                    started_at=started,
                    finished_at=now,
                    duration_s=max(0.0, (now - started).total_seconds()),
                    partitions=partitions,
                    error=message,
                )
            )
            if computation.pending_version == pending_version:  # not asked for again meanwhile
                again.append(computation.tag_id)
        TagRun.objects.bulk_create(runs)
        TagComputation.objects.filter(tag_id__in=again).update(
            is_calculating=False,
            errors_calculating=F("errors_calculating") + 1,
            last_error=message,
            last_error_at=now,
        )
        pending = enqueue_compute(brand, again, partitions=partitions) if (again and requeue) else None
    if runs:
        log.warning(
            "run %s of %s abandoned (%s tags); requested again as %s",
            pending_version,
            brand.code,
            len(runs),
            pending,
        )
    return runs, pending


def abandon_claimed_run(claim, requeue: bool) -> None:
    """The reaper's handler of engine claims (:mod:`tagportal.core.claims`)."""
    payload = claim.payload or {}
    abandon_run(
        payload["brand_id"],
        payload["pending_version"],
        payload.get("tag_ids") or [],
        partitions=int(payload.get("partitions") or 1),
        started_at=claim.started_at,
        message=_("The worker %(owner)s running the computation was lost; it was requested again.")
        % {"owner": claim.owner}
        if requeue
        else _("The worker %(owner)s running the computation was lost.") % {"owner": claim.owner},
        requeue=requeue,
    )


def _swap(computation, claim: Claim, outcome: TagOutcome, population: int, run: TagRun, now) -> None:
    value_type = claim.spec.value_type
    distribution = outcome.distribution
    coverage = outcome.coverage(value_type, population)
    previous = _previous_distribution(claim.tag.pk)
    psi = None
    if previous and sum(previous.values()) and sum(distribution.values()):
        psi = round(bm.psi(previous, distribution), 6)
    drift = psi is not None and psi > drift_threshold()
    TagValueBitmap.objects.filter(computation=computation).delete()
    TagValueBitmap.objects.bulk_create(
        TagValueBitmap(computation=computation, value=value, bitmap=bm.serialize(b), count=len(b))
        for value, b in outcome.bitmaps.items()
    )
    computation.version = outcome.version or (claim.version.version if claim.version else None)
    computation.value_type = value_type
    computation.is_calculating = False
    computation.last_calculated_at = now
    computation.errors_calculating = 0
    computation.population = population
    computation.coverage = coverage
    computation.distribution = distribution
    computation.psi = psi
    computation.drift_flag = drift
    computation.numbers = pack_numbers(outcome.numbers) if value_type == "number" else None
    computation.save(
        update_fields=[
            "version",
            "value_type",
            "is_calculating",
            "last_calculated_at",
            "errors_calculating",
            "population",
            "coverage",
            "distribution",
            "psi",
            "drift_flag",
            "numbers",
        ]
    )
    run.status = RunStatus.SUCCESS
    run.tag_version = computation.version
    run.coverage = coverage
    run.distribution = distribution
    run.psi = psi
    run.drift_flag = drift
    run.evaluate_s = outcome.seconds


class ValuesRefused(ValueError):
    """Values that cannot be a tag's result (:func:`store_values`); nothing was written."""


def _checked_values(values: pd.Series, spec: TagSpec) -> pd.Series:
    """``values`` as the tag's value type, indexed by valid, distinct OneIDs, without
    missing values; :class:`ValuesRefused` naming the first problem otherwise."""
    if not isinstance(values, pd.Series):
        raise ValuesRefused(_("The values must be a Series indexed by OneID."))
    try:
        ids = pd.Index(values.index).astype("int64")
    except (TypeError, ValueError) as exc:
        raise ValuesRefused(_("The values must be indexed by whole-number OneIDs.")) from exc
    if len(ids) and (ids.min() < 0 or ids.max() > bm.MAX_ONEID):
        raise ValuesRefused(_("OneIDs must be between 0 and %(max)s.") % {"max": bm.MAX_ONEID})
    if ids.has_duplicates:
        raise ValuesRefused(_("A OneID has more than one value."))
    series = pd.Series(values.to_numpy(), index=pd.Index(ids, name="oneid"))
    series = series[series.notna()]
    if spec.value_type == "number":
        numbers = pd.to_numeric(series, errors="coerce")
        if numbers.isna().any() or not np.isfinite(numbers.to_numpy(dtype="float64")).all():
            bad = series[numbers.isna() | ~np.isfinite(numbers.fillna(0).to_numpy(dtype="float64"))]
            raise ValuesRefused(
                _("The value %(value)r of OneID %(oneid)s is not a finite number.")
                % {"value": bad.iloc[0], "oneid": bad.index[0]}
            )
        return numbers.astype("float64").sort_index()
    if spec.value_type == "boolean":
        bad = series[~series.map(lambda v: isinstance(v, bool | np.bool_))]
        if len(bad):
            raise ValuesRefused(
                _("The value %(value)r of OneID %(oneid)s is not yes or no.")
                % {"value": bad.iloc[0], "oneid": bad.index[0]}
            )
        return series.astype(bool).sort_index()
    codes = set(bm.declared_values(spec.value_type, spec.values))
    texts = series.astype(str)
    bad = texts[~texts.isin(codes)]
    if len(bad):
        raise ValuesRefused(
            _("The value %(value)r of OneID %(oneid)s is not one of the tag's values (%(codes)s).")
            % {"value": bad.iloc[0], "oneid": bad.index[0], "codes": ", ".join(sorted(codes))}
        )
    return texts.sort_index()


def store_values(tag: Tag, values: pd.Series, *, population: int | None = None, started_at=None) -> TagRun:
    """Write values computed outside the engine (a fitted model's scores, an uploaded
    score file) as the current result of a published tag, atomically, as a batch run
    would: one bitmap per value (number tags: per bucket, plus the numbers), coverage
    over ``population`` people (default: those with a value), distribution, PSI and
    drift against the previous result, and a successful :class:`TagRun`. Readers are
    told with ``results_updated`` once the transaction commits.

    ``values``: a Series indexed by OneID — numbers for a number tag, value codes for an
    enum tag, booleans for a yes/no tag; missing values mean no value. Values the tag
    cannot hold raise :class:`ValuesRefused` and nothing is written."""
    started_at = started_at or timezone.now()
    tag = Tag.objects.get(pk=tag.pk)
    if tag.published_version is None:
        raise ValuesRefused(_("The tag “%(code)s” is not published.") % {"code": tag.code})
    version = published_snapshots([tag]).get(tag.pk)
    if version is None:
        raise ValuesRefused(
            _("Published version %(n)s of the tag is missing.") % {"n": tag.published_version}
        )
    spec = spec_of(version)
    series = _checked_values(values, spec)
    began = time.perf_counter()
    maps = {value_text(k): b for k, b in bm.to_bitmaps(series, spec.values).items()}
    numbers = bm.numbers(series) if spec.value_type == "number" else None
    outcome = TagOutcome(maps, numbers, time.perf_counter() - began, version.version)
    population = len(series) if population is None else int(population)
    if population < len(series):
        raise ValuesRefused(
            _("The population (%(population)s) is smaller than the people with a value (%(n)s).")
            % {"population": population, "n": len(series)}
        )
    finished_at = timezone.now()
    with transaction.atomic():
        _ensure_computations([tag])
        computation = TagComputation.objects.select_for_update().defer("numbers").get(tag=tag)
        run = TagRun(
            tag=tag,
            brand_id=tag.brand_id,
            tag_version=version.version,
            pending_version=computation.pending_version,
            started_at=started_at,
            finished_at=finished_at,
            duration_s=(finished_at - started_at).total_seconds(),
            population=population,
        )
        _swap(computation, Claim(tag, computation.pk, version, spec), outcome, population, run, finished_at)
        run.save()
        brand_id, tag_ids = tag.brand_id, [tag.pk]
        transaction.on_commit(
            lambda: results_updated.send_robust(sender=TagComputation, brand_id=brand_id, tag_ids=tag_ids)
        )
    return run


def fail_plan(plan: Plan, message: str) -> list[TagRun]:
    """Record a run that failed as a whole (data could not be loaded, a worker died):
    every claimed tag gets a failed run and keeps its previous result."""
    failed = PartialResult(errors=dict.fromkeys(plan.claims, message))
    return store_results(plan, failed)


# ---------------------------------------------------------------------------
# The batch computation


@dataclass
class ComputeReport:
    brand: str
    pending_version: int
    runs: list[TagRun]
    population: int = 0
    rows_read: int = 0
    seconds: float = 0.0
    metrics_reused: int = 0

    def as_dict(self) -> dict:
        return {
            "brand": self.brand,
            "pending_version": self.pending_version,
            "population": self.population,
            "rows_read": self.rows_read,
            "seconds": round(self.seconds, 3),
            "runs": {run.tag.code: run.status for run in self.runs},
        }


def compute_brand(
    brand,
    tag_ids=None,
    pending_version: int | None = None,
    frames=None,
    as_of=None,
    partitions: int = 1,
) -> ComputeReport:
    """Compute the brand's published tags (or ``tag_ids`` among them) and store them.

    ``frames`` (``(profiles, events, orders)``) are loaded from the profiles app when
    not given. With ``partitions`` > 1 the people are split into that many OneID ranges,
    evaluated one range at a time and OR-merged. An exception while loading or
    evaluating fails every claimed tag (previous results stay) and is raised again, so
    that a task can retry."""
    brand = resolve_brand(brand)
    as_of = as_of or timezone.now()
    plan = plan_compute(brand, tag_ids, pending_version, partitions)
    runs = list(plan.superseded_runs)
    if not plan.claims:
        return ComputeReport(brand.code, plan.pending_version, runs)
    started = time.perf_counter()
    pause_point("engine.compute")  # test hook: tags calculating, nothing evaluated yet
    try:
        specs = plan.specs
        known = known_values(brand, specs) if specs else {}
        parts = []
        if not specs:
            parts = [PartialResult()]
        elif frames is not None:
            population = population_of(frames)
            for lo, hi in split_ranges(population, partitions) if partitions > 1 else [(0, ONEID_END)]:
                part_frames = slice_frames(frames, lo, hi) if partitions > 1 else frames
                part_population = population[(population >= lo) & (population < hi)]
                parts.append(
                    parallel.evaluate(specs, part_frames, as_of, part_population, known, plan.versions)
                )
        else:
            ranges = bounds_ranges(*oneid_bounds(brand), partitions) if partitions > 1 else [None]
            for oneid_range in ranges:
                loaded = load_frames(brand, oneid_range=oneid_range)
                parts.append(parallel.evaluate(specs, loaded, as_of, None, known, plan.versions))
                del loaded
        merged = merge_partials(parts)
    except Exception as exc:
        log.exception("computing the tags of %s failed", brand.code)
        try:
            fail_plan(plan, f"{type(exc).__name__}: {exc}")
        except Exception:  # the database may be what failed; reset_stuck will clean up
            log.exception("could not record the failure of %s", brand.code)
        raise
    runs += store_results(plan, merged)
    for run in runs:
        run.tag = plan.claims[run.tag_id].tag if run.tag_id in plan.claims else run.tag
    return ComputeReport(
        brand.code,
        plan.pending_version,
        runs,
        population=merged.population,
        rows_read=merged.rows_read,
        seconds=time.perf_counter() - started,
        metrics_reused=merged.metrics_reused,
    )


def compute_range(brand, tag_ids, lo: int, hi: int, pending_version: int, as_of=None) -> PartialResult:
    """One OneID range of a partitioned run (a chord's header task): evaluate the
    claimed tags on the people in ``[lo, hi)``; nothing is stored."""
    brand = resolve_brand(brand)
    tags = _published_tags(brand, tag_ids)
    live = set(
        TagComputation.objects.filter(tag__in=tags, pending_version__lte=pending_version).values_list(
            "tag_id", flat=True
        )
    )
    if not live:
        return PartialResult(superseded=True)
    tags = [t for t in tags if t.pk in live]
    versions = published_snapshots(tags)
    specs = {tag_id: spec_of(v) for tag_id, v in versions.items() if not _is_manual(spec_of(v))}
    pause_point("engine.compute")
    frames = load_frames(brand, oneid_range=(lo, hi))
    part = evaluate_partition(
        specs,
        frames,
        as_of or timezone.now(),
        None,
        known_values(brand, specs),
        {k: v.version for k, v in versions.items()},
    )
    for tag in tags:
        if tag.pk not in versions:
            part.errors[tag.pk] = _("Published version %(n)s of the tag is missing.") % {
                "n": tag.published_version
            }
    return part


# ---------------------------------------------------------------------------
# Scheduling and housekeeping


def last_fire(expression: str, now: dt.datetime, horizon_days: int = 400) -> dt.datetime | None:
    """The latest moment at or before ``now`` (to the minute) that a five-field cron
    expression names in Beijing time, or None if none in ``horizon_days`` or the
    expression is invalid. As in classic cron, when both the day of the month and the
    day of the week are restricted, a day matching either fires."""
    local = now.astimezone(BEIJING)
    before = local.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    try:
        if len(expression.split()) != 5:
            raise ValueError("a cron expression has five fields")
        cron = croniter(expression, before, day_or=True, max_years_between_matches=horizon_days // 365 + 1)
        fired = cron.get_prev(dt.datetime)
    except CroniterBadDateError:  # valid, but names no moment in the horizon
        return None
    except (ValueError, TypeError, KeyError):
        log.warning("invalid cron expression %r", expression)
        return None
    if fired.date() < local.date() - dt.timedelta(days=horizon_days):
        return None
    return fired


def backoff(failures: int) -> dt.timedelta:
    if failures <= 0:
        return dt.timedelta(0)
    return min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(failures - 1, 20))


def due_tags(brand, now: dt.datetime | None = None) -> list[Tag]:
    """The brand's published batch tags to compute now: never computed, a newer version
    published, or their schedule fired since the last result; not while calculating,
    and not before the back-off after failures has passed."""
    brand = resolve_brand(brand)
    now = now or timezone.now()
    due = []
    tags = (
        Tag.objects.published()
        .filter(brand=brand, refresh_mode=RefreshMode.BATCH)
        .select_related("computation")
    )
    for tag in tags.order_by("code"):
        computation = getattr(tag, "computation", None)
        if computation is None:
            due.append(tag)
            continue
        if computation.is_calculating:
            continue
        if computation.errors_calculating and computation.last_error_at:
            if now < computation.last_error_at + backoff(computation.errors_calculating):
                continue
        if computation.last_calculated_at is None or computation.version != tag.published_version:
            due.append(tag)
            continue
        fired = last_fire(tag.schedule or "0 2 * * *", now)
        if fired is not None and fired > computation.last_calculated_at:
            due.append(tag)
    return due


def schedule_due(now: dt.datetime | None = None) -> dict[str, int]:
    """Request computations of every active brand's due tags: ``{brand code: pending version}``."""
    requested = {}
    for brand in Brand.objects.filter(is_active=True).order_by("code"):
        due = due_tags(brand, now)
        if due:
            pending = enqueue_compute(brand, [t.pk for t in due])
            if pending is not None:
                requested[brand.code] = pending
    return requested


def reset_stuck(older_than: dt.timedelta = STUCK_AFTER, now: dt.datetime | None = None) -> int:
    """Give up on computations calculating for longer than ``older_than``: they get a
    failed run and an error (their previous result stays). Returns how many."""
    now = now or timezone.now()
    limit = now - older_than
    count = 0
    stuck = TagComputation.objects.filter(is_calculating=True).filter(
        Q(calculation_started_at__lt=limit) | Q(calculation_started_at__isnull=True)
    )
    message = _("The computation did not finish within %(hours)s hours and was reset.") % {
        "hours": round(older_than.total_seconds() / 3600, 2)
    }
    for computation in stuck.select_related("tag"):
        with transaction.atomic():
            updated = TagComputation.objects.filter(pk=computation.pk, is_calculating=True).update(
                is_calculating=False,
                errors_calculating=F("errors_calculating") + 1,
                last_error=message,
                last_error_at=now,
            )
            if not updated:
                continue
            started = computation.calculation_started_at or now
            TagRun.objects.create(
                tag=computation.tag,
                brand_id=computation.tag.brand_id,
                tag_version=computation.tag.published_version,
                pending_version=computation.pending_version,
                status=RunStatus.FAILED,
                started_at=started,
                finished_at=now,
                duration_s=(now - started).total_seconds(),
                error=message,
            )
            count += 1
    if count:
        log.warning("reset %s hung tag computations", count)
    return count


# ---------------------------------------------------------------------------
# Default periodic tasks (django-celery-beat), editable in the admin afterwards

DEFAULT_SCHEDULES = [
    {
        "name": "engine: compute due tags",
        "task": "tagportal.engine.tasks.schedule_due_computes",
        "every_minutes": 5,
        "queue": "default",
    },
    {
        "name": "engine: reset hung computations",
        "task": "tagportal.engine.tasks.reset_stuck_runs",
        "every_minutes": 30,
        "queue": "default",
    },
]


def ensure_default_schedules(periodic_task_model=None, interval_model=None, entries=None) -> list[str]:
    """Create the engine's periodic tasks (or ``entries`` in the shape of
    :data:`DEFAULT_SCHEDULES`, another app's) if they do not exist (existing ones,
    possibly edited in the admin, are left alone). Returns the names created."""
    if periodic_task_model is None or interval_model is None:
        from django_celery_beat.models import IntervalSchedule, PeriodicTask

        periodic_task_model, interval_model = PeriodicTask, IntervalSchedule
    created = []
    for entry in DEFAULT_SCHEDULES if entries is None else entries:
        if periodic_task_model.objects.filter(name=entry["name"]).exists():
            continue
        interval, _new = interval_model.objects.get_or_create(every=entry["every_minutes"], period="minutes")
        periodic_task_model.objects.create(
            name=entry["name"], task=entry["task"], interval=interval, queue=entry["queue"], enabled=True
        )
        created.append(entry["name"])
    return created
