"""Signal receivers of governance: a submitted change request queues its impact preview;
a held run of an algorithm model becomes a change request."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from tagportal.predictive.signals import run_held

from .choices import RequestState
from .models import ChangeRequest


@receiver(post_save, sender=ChangeRequest, dispatch_uid="governance_impact_on_submit")
def queue_preview_on_submit(sender, instance: ChangeRequest, created: bool, raw: bool = False, **kwargs):
    """Once a submission commits, queue its previews (with a broker; see
    :func:`.impact.queue_on_submit`)."""
    if raw or instance.state != RequestState.SUBMITTED:
        return
    from . import impact

    transaction.on_commit(lambda: impact.queue_on_submit(instance))


@receiver(run_held, dispatch_uid="governance_review_held_run")
def review_held_run(sender, run, reason: str, comparison: dict, **kwargs):
    """A held model run goes to the stewards as a change request (see :mod:`.model_runs`);
    answers the request, so the registry sends no notice of its own."""
    from . import model_runs

    return model_runs.propose_held_run(run, reason, comparison)
