"""Celery entry points of core: the reaper of abandoned work claims (see :mod:`.claims`).

It runs every minute (the periodic task created by migration 0002) and when a worker
starts, so that work a killed worker of this machine held is queued again at once."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import connections

log = logging.getLogger(__name__)


@shared_task(name="tagportal.core.tasks.reap_abandoned_claims")
def reap_abandoned_claims() -> list[str]:
    """Periodic: record and requeue the work of dead workers."""
    from . import claims

    return claims.reap()


@worker_ready.connect(dispatch_uid="core.reap_claims_on_worker_ready")
def reap_when_a_worker_starts(sender=None, **kwargs):
    from . import claims

    try:
        reaped = claims.reap()
        if reaped:
            log.warning("work of dead workers queued again: %s", ", ".join(reaped))
    except Exception:  # never keep a worker from starting
        log.exception("could not reap abandoned claims")
    finally:
        connections.close_all()
