"""Celery entry point of the usage app: folding buffered uses into daily counters."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services

#: The periodic task created with the database (editable in the admin afterwards).
DEFAULT_SCHEDULES = [
    {
        "name": "Fold tag usage into daily counters",
        "task": "tagportal.usage.tasks.aggregate_usage",
        "crontab": {"minute": "10", "hour": "0"},
    },
]


@shared_task(
    name="tagportal.usage.tasks.aggregate_usage",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=30,
    retry_backoff_max=30 * 60,
    retry_jitter=True,
    max_retries=5,
)
def aggregate_usage() -> dict:
    """Fold buffered tag uses into the daily counters; prune counters past retention."""
    return services.aggregate()
