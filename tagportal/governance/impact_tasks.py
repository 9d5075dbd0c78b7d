"""Celery entry point of the impact preview (see :mod:`.impact`), and the hook that
queues it when a change request is submitted.

Kept apart from :mod:`.tasks`; :class:`~.apps.GovernanceConfig` imports this module
so that Celery registers the task and the hook is connected. The task takes an id,
is safe to run twice (a valid cached preview is kept unless ``force``) and is sent
to the ``compute`` queue, beside the engine's computations."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError, transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from .choices import RequestState
from .models import ChangeRequest

log = logging.getLogger(__name__)


@shared_task(
    name="tagportal.governance.impact_tasks.preview_impact",
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=30,
    retry_backoff_max=30 * 60,
    retry_jitter=True,
    max_retries=5,
)
def preview_impact(change_request_id: int, force: bool = False) -> dict:
    """Compute the impact previews of a change request's rule changes."""
    from . import impact

    cr = ChangeRequest.objects.filter(pk=change_request_id).first()
    if cr is None:
        log.warning("change request %s no longer exists", change_request_id)
        return {"change_request": change_request_id, "status": "missing"}
    previews = impact.preview(cr, force=force)
    return {
        "change_request": cr.pk,
        "items": {p.get("item"): p.get("state") for p in previews if p},
    }


@receiver(post_save, sender=ChangeRequest, dispatch_uid="governance_impact_on_submit")
def queue_preview_on_submit(sender, instance: ChangeRequest, created: bool, raw: bool = False, **kwargs):
    """Once a submission commits, queue its previews (with a broker; see
    :func:`.impact.queue_on_submit`)."""
    if raw or instance.state != RequestState.SUBMITTED:
        return
    from . import impact

    transaction.on_commit(lambda: impact.queue_on_submit(instance))
