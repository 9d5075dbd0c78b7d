"""Celery entry points of audiences. They take ids, call :mod:`.services` and are safe
to run twice: a refresh that was superseded by a newer request stops at once, and one
whose snapshot was already written by a newer refresh writes nothing.

They go to the ``default`` queue (given where they are sent: :func:`.services.enqueue_refresh`
and the periodic task created by migration 0002). Infrastructure errors (database
unreachable, I/O) are retried with exponential back-off; an audience that cannot be
refreshed (moved pins, an expression that no longer fits) is not an error of the task:
its ``last_error`` says why.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

log = logging.getLogger(__name__)

RETRY = {
    "autoretry_for": (OperationalError, InterfaceError, OSError),
    "retry_backoff": 30,
    "retry_backoff_max": 30 * 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, **RETRY)
def refresh_audience(
    self, audience_id: int, trigger: str = "schedule", pending_version: int | None = None
) -> dict:
    """Refresh one audience (requested as ``pending_version`` when queued by
    :func:`.services.enqueue_refresh`), holding a claim on it (:mod:`tagportal.core.claims`):
    when the worker dies, the reaper clears its "refreshing" state and requests it again."""
    from tagportal.core import claims

    from . import services
    from .models import Audience

    audience = Audience.objects.filter(pk=audience_id).first()
    if audience is None:
        return {"audience": audience_id, "snapshot": None, "reason": "gone"}
    task_id = getattr(self.request, "id", None) or ""
    with claims.hold(
        *services.claim_of(audience_id, trigger, pending_version, task_id), task_id=task_id
    ) as claim:
        if claim is None:
            return {"audience": audience_id, "snapshot": None, "reason": "claimed"}
        # in a worker, problems are recorded on the audience, not raised
        snapshot = services.refresh(audience, trigger, pending_version=pending_version, raise_errors=False)
    audience.refresh_from_db(fields=["last_error"])
    return {
        "audience": audience_id,
        "snapshot": snapshot.number if snapshot else None,
        "size": snapshot.size if snapshot else None,
        "error": audience.last_error or None,
    }


@shared_task
def refresh_due_audiences() -> int:
    """Periodic (hourly): queue a refresh of every audience due on its schedule."""
    from . import services

    return services.refresh_due()
