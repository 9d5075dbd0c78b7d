"""Celery entry points of the journeys. ``run_journeys`` runs every minute
(django-celery-beat, see :data:`DEFAULT_SCHEDULES`): scheduled entries, new events and
orders (entries, waits woken, goals), then the due instances advanced batch after
batch. ``acks_late``: a worker killed mid-batch leaves its instances under a lease,
claimed again once it ends; the steps already recorded are not done again."""

from __future__ import annotations

from celery import shared_task

from . import runner, services

#: django-celery-beat entries of this app (registered by migration 0002).
DEFAULT_SCHEDULES = [
    {
        "name": "journeys: advance due journey instances",
        "task": "tagportal.journeys.tasks.run_journeys",
        "every_minutes": 1,
        "queue": "default",
    },
]


@shared_task(acks_late=True)
def run_journeys(limit: int = 500, batches: int = 20) -> dict:
    """One periodic run: schedules, new activity, then the due instances."""
    entered = services.run_schedules()
    polled = services.poll_activity()
    advanced = runner.run_due(limit=limit, batches=batches)
    return {"scheduled": entered, **polled, "advanced": advanced}


def ensure_default_schedules(periodic_task_model=None, interval_model=None) -> list[str]:
    """Register this app's periodic task (the engine's helper; existing entries stay)."""
    from tagportal.engine.services import ensure_default_schedules as ensure

    return ensure(periodic_task_model, interval_model, entries=DEFAULT_SCHEDULES)
