"""Celery entry points of the activation channels. ``deliver_due`` runs every minute
(django-celery-beat, see :data:`DEFAULT_SCHEDULES`) and after each new send; the due
time of a delivery is a column, never a Celery countdown. ``acks_late``: a worker killed
mid-batch leaves its rows ``sending`` under a lease, claimed again once it ends.
``run_syncs`` does the same for the audience syncs' batches (:mod:`.syncs`)."""

from __future__ import annotations

from celery import shared_task

from . import deliveries, syncs

#: django-celery-beat entries of this app (registered by migration 0004, the audience
#: syncs' by ``audience_sync``).
DEFAULT_SCHEDULES = [
    {
        "name": "activation: deliver due messages",
        "task": "tagportal.activation.tasks.deliver_due",
        "every_minutes": 1,
        "queue": "default",
    },
    {
        "name": "activation: apply due audience syncs",
        "task": "tagportal.activation.tasks.run_syncs",
        "every_minutes": 1,
        "queue": "default",
    },
    {
        "name": "activation: catch up message feedback events",
        "task": "tagportal.activation.tasks.catch_up_feedback",
        "every_minutes": 10,
        "queue": "default",
    },
    {
        "name": "activation: read back WeCom mass message results",
        "task": "tagportal.activation.tasks.read_wecom_results",
        "every_minutes": 60,
        "queue": "default",
    },
]


@shared_task(acks_late=True)
def deliver_due(limit: int | None = None) -> dict:
    """Claim and send the due deliveries, batch after batch (a bounded time)."""
    return deliveries.deliver_due(limit)


@shared_task(acks_late=True)
def run_syncs(limit: int | None = None) -> dict:
    """Claim and apply the due batches of the audience syncs (a bounded time)."""
    return syncs.run_due(limit)


@shared_task
def catch_up_feedback(hours: float | None = None) -> int:
    """Write the feedback events a dead worker left unwritten, for the deliveries that
    moved in the last ``hours`` (``TAGPORTAL_FEEDBACK_CATCH_UP_HOURS``, 2)."""
    import datetime as dt

    from django.conf import settings
    from django.utils import timezone

    from . import feedback

    hours = hours if hours is not None else float(getattr(settings, "TAGPORTAL_FEEDBACK_CATCH_UP_HOURS", 2))
    return feedback.catch_up(timezone.now() - dt.timedelta(hours=hours))


@shared_task
def read_wecom_results() -> dict:
    """Each active WeCom account's per-customer results of its sent mass messages, as
    receipts; an account the platform refuses is skipped (and tried next time)."""
    from .choices import ChannelKind
    from .connectors.base import ChannelError
    from .models import ChannelAccount

    totals = {}
    for account in ChannelAccount.objects.filter(kind=ChannelKind.WECOM, is_active=True):
        try:
            totals[account.pk] = deliveries.read_wecom_results(account)
        except ChannelError as exc:
            totals[account.pk] = {"error": str(exc.code)}
    return totals


def ensure_default_schedules(periodic_task_model=None, interval_model=None) -> list[str]:
    """Register this app's periodic task (the engine's helper; existing entries stay)."""
    from tagportal.engine.services import ensure_default_schedules as ensure

    return ensure(periodic_task_model, interval_model, entries=DEFAULT_SCHEDULES)
