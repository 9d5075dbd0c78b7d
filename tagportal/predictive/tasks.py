"""Celery entry points of the model registry: they take ids and call :mod:`.services`.
A repeated run fits again and writes the same kind of result (safe to run twice)."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services
from .models import PredictiveModel

QUEUE = "compute"
#: A lost database connection is retried, later each time; the runs are safe to repeat.
RETRY = {
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 30,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(**RETRY)
def run_model_task(model_id: int, as_of: str | None = None) -> dict:
    """Fit, score and publish (or hold) one model as of ``as_of`` (ISO; now by default)."""
    model = PredictiveModel.objects.filter(pk=model_id).first()
    if model is None:
        return {"model": model_id, "status": "missing"}
    run = services.run_model(model, as_of=dt.datetime.fromisoformat(as_of) if as_of else None)
    return {"model": model_id, "run": run.pk, "status": run.status}


@shared_task
def run_due_models() -> list[int]:
    """Periodic: queue the runs of the models whose schedule fired."""
    return services.run_due_models()


@shared_task(**RETRY)
def score_model_task(model_id: int) -> dict:
    """Score one model on its brand's current data (after a tag computation)."""
    model = PredictiveModel.objects.filter(pk=model_id, is_active=True).first()
    if model is None:
        return {"model": model_id, "status": "missing"}
    run = services.score_model(model)
    return {"model": model_id, "run": run.pk if run else None, "status": run.status if run else "unpublished"}
