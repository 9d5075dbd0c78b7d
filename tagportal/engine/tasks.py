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

Each task holds a claim (:mod:`tagportal.core.claims`) on its part of the run while it
works, with a heartbeat: when its worker is killed the reaper records the run abandoned
and requests it again within minutes (:func:`.services.abandon_claimed_run`), rather than
waiting for the broker to redeliver the message. A redelivered task whose claim was
abandoned does nothing; one whose run was stored records nothing more (runs are
idempotent by pending version, :func:`.services.settled_tags`).
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import chord, group, shared_task
from django.db import InterfaceError, OperationalError

from tagportal.core import claims

from . import services
from .services import PartialResult

log = logging.getLogger(__name__)

COMPUTE_QUEUE = "compute"
DEFAULT_QUEUE = "default"

#: Errors worth retrying: the database, the broker or the disk were unavailable.
INFRASTRUCTURE_ERRORS = (OperationalError, InterfaceError, OSError)

#: The kind of the engine's claims (the reaper's handler is registered by the app).
CLAIM_KIND = "engine.run"

RETRY = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": INFRASTRUCTURE_ERRORS,
    "retry_backoff": 30,
    "retry_backoff_max": 30 * 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(bind=True, **RETRY)
def compute_brand_task(self, brand_id: int, pending_version: int, tag_ids=None, partitions: int = 1) -> dict:
    """Compute a brand's published tags (or ``tag_ids``) requested as ``pending_version``."""
    with _claim(self, "whole", brand_id, pending_version, tag_ids, partitions) as claim:
        if claim is None:
            return {"brand_id": brand_id, "pending_version": pending_version, "runs": {}, "skipped": True}
        report = services.compute_brand(
            brand_id, tag_ids=tag_ids, pending_version=pending_version, partitions=partitions
        )
        return report.as_dict()


def _claim(task, part: str, brand_id: int, pending_version, tag_ids, partitions: int):
    """The claim of one part (``whole``, ``chord``, ``range:<lo>``, ``merge``) of a run."""
    return claims.hold(
        CLAIM_KIND,
        f"engine:{brand_id}:{pending_version}:{part}",
        f"engine.brand:{brand_id}",
        {
            "brand_id": brand_id,
            "pending_version": pending_version,
            "tag_ids": sorted(tag_ids) if tag_ids else None,
            "partitions": partitions,
        },
        task_id=getattr(task.request, "id", None) or "",
    )


@shared_task(bind=True, **RETRY)
def compute_partition(
    self, brand_id: int, tag_ids, lo: int, hi: int, pending_version: int, as_of=None, partitions: int = 2
) -> dict:
    """Evaluate tags for the people whose OneID is in ``[lo, hi)`` as of ``as_of`` (ISO
    text; now by default): the serialized bitmaps and numbers (base64 in JSON), nothing
    stored."""
    moment = dt.datetime.fromisoformat(as_of) if as_of else None
    with _claim(self, f"range:{lo}", brand_id, pending_version, tag_ids, partitions) as claim:
        if claim is None:  # abandoned and requested again: the merge of this run stores nothing
            return PartialResult(superseded=True).to_json()
        return services.compute_range(brand_id, tag_ids, lo, hi, pending_version, as_of=moment).to_json()


@shared_task(bind=True, **RETRY)
def merge_and_store(
    self, results, brand_id: int, pending_version: int, tag_ids=None, started_at=None
) -> dict:
    """The chord's callback: OR the ranges' bitmaps together and store every tag atomically."""
    with _claim(self, "merge", brand_id, pending_version, tag_ids, len(results)) as claim:
        if claim is None:
            return {"brand_id": brand_id, "pending_version": pending_version, "runs": {}, "skipped": True}
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


@shared_task(bind=True, **RETRY)
def compute_brand_chord(self, brand_id: int, pending_version: int, partitions: int, tag_ids=None):
    """Split a brand's people into ``partitions`` OneID ranges, evaluate them in parallel
    (a chord of :func:`compute_partition`) and merge them with :func:`merge_and_store`.

    Chords need a result backend; without one the ranges are computed one after the
    other in this task."""
    app = compute_brand_chord.app
    with _claim(self, "chord", brand_id, pending_version, tag_ids, partitions) as claim:
        if claim is None:
            return {"brand_id": brand_id, "pending_version": pending_version, "runs": {}, "skipped": True}
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
            compute_partition.s(plan.brand.pk, ids, lo, hi, pending_version, as_of, partitions).set(
                queue=COMPUTE_QUEUE
            )
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
