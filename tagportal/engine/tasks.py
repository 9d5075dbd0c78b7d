"""Celery entry points of the tag engine. They take ids, call :mod:`.services` and are
safe to run twice (a repeated run recomputes the same result; a superseded one
stops early).

Computations go to the ``compute`` queue, the periodic housekeeping to ``default``:
the queue is given where a task is sent (:func:`.services.enqueue_compute`, the
chord, the periodic task entries), not as a task attribute (deprecated in Celery 5.5;
``CELERY_TASK_ROUTES`` in settings is the other way).
Infrastructure errors (database or broker unreachable, I/O) are retried with
exponential back-off; a tag whose rule fails is not an error of the task: it gets a
failed run and the other tags go on.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import chord, group, shared_task
from django.db import InterfaceError, OperationalError

from . import services
from .services import PartialResult

log = logging.getLogger(__name__)

COMPUTE_QUEUE = "compute"
DEFAULT_QUEUE = "default"

#: Errors worth retrying: the database, the broker or the disk were unavailable.
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, OSError)

RETRY = {
    "autoretry_for": INFRASTRUCTURE_ERRORS,
    "retry_backoff": 30,
    "retry_backoff_max": 30 * 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(acks_late=True, **RETRY)
def compute_brand_task(brand_id: int, pending_version: int, tag_ids=None, partitions: int = 1) -> dict:
    """Compute a brand's published tags (or ``tag_ids``) requested as ``pending_version``."""
    report = services.compute_brand(
        brand_id, tag_ids=tag_ids, pending_version=pending_version, partitions=partitions
    )
    return report.as_dict()


@shared_task(acks_late=True, **RETRY)
def compute_partition(brand_id: int, tag_ids, lo: int, hi: int, pending_version: int, as_of=None) -> dict:
    """Evaluate tags for the people whose OneID is in ``[lo, hi)`` as of ``as_of`` (ISO
    text; now by default): the serialized bitmaps and numbers (base64 in JSON), nothing
    stored."""
    moment = dt.datetime.fromisoformat(as_of) if as_of else None
    return services.compute_range(brand_id, tag_ids, lo, hi, pending_version, as_of=moment).to_json()


@shared_task(acks_late=True, **RETRY)
def merge_and_store(results, brand_id: int, pending_version: int, tag_ids=None, started_at=None) -> dict:
    """The chord's callback: OR the ranges' bitmaps together and store every tag atomically."""
    merged = services.merge_partials(PartialResult.from_json(r) for r in results)
    plan = services.plan_compute(brand_id, tag_ids, pending_version, partitions=len(results))
    if started_at:
        plan.started_at = dt.datetime.fromisoformat(started_at)
    runs = services.store_results(plan, merged)
    return {
        "brand_id": brand_id,
        "pending_version": pending_version,
        "runs": {r.tag_id: r.status for r in runs},
    }


@shared_task(acks_late=True, **RETRY)
def compute_brand_chord(brand_id: int, pending_version: int, partitions: int, tag_ids=None):
    """Split a brand's people into ``partitions`` OneID ranges, evaluate them in parallel
    (a chord of :func:`compute_partition`) and merge them with :func:`merge_and_store`.

    Chords need a result backend; without one the ranges are computed one after the
    other in this task."""
    app = compute_brand_chord.app
    if not app.conf.task_always_eager and not app.conf.result_backend:
        log.info("no result backend: computing the %s ranges in-process", partitions)
        return services.compute_brand(
            brand_id, tag_ids=tag_ids, pending_version=pending_version, partitions=partitions
        ).as_dict()
    plan = services.plan_compute(brand_id, tag_ids, pending_version, partitions)
    if not plan.claims:
        return {"brand_id": brand_id, "pending_version": pending_version, "runs": {}}
    ids = sorted(plan.claims)
    ranges = services.bounds_ranges(*services.oneid_bounds(plan.brand), partitions)
    as_of = plan.started_at.isoformat()  # every range computes as of the same moment
    header = group(
        compute_partition.s(plan.brand.pk, ids, lo, hi, pending_version, as_of).set(queue=COMPUTE_QUEUE)
        for lo, hi in ranges
    )
    callback = merge_and_store.s(plan.brand.pk, pending_version, ids, plan.started_at.isoformat()).set(
        queue=COMPUTE_QUEUE
    )
    result = chord(header)(callback)
    return {"brand_id": brand_id, "pending_version": pending_version, "chord": str(result.id)}


@shared_task
def schedule_due_computes() -> dict:
    """Periodic: request computations of every brand's due tags."""
    return services.schedule_due()


@shared_task
def reset_stuck_runs() -> int:
    """Periodic: reset computations that hung."""
    return services.reset_stuck()
