"""Celery entry points of governance: building reports and the impact preview of a change
request. They take ids or nothing, call services and are safe to run twice (a report run
again rewrites the same row with the same data; a valid cached preview is kept unless
``force``). The preview goes to the ``compute`` queue, beside the engine's computations."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

log = logging.getLogger(__name__)

RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 30,
    "retry_backoff_max": 30 * 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(
    name="tagportal.governance.tasks.run_report",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    **RETRY,
)
def run_report(self, report_id: int) -> dict:
    """Build a report, holding a claim on it (:mod:`tagportal.core.claims`): when the worker
    dies, the reaper marks the report failed and requests it again."""
    from tagportal.core import claims

    from .models import Report
    from .reports import service

    report = Report.objects.filter(pk=report_id).first()
    if report is None:
        log.warning("report %s no longer exists", report_id)
        return {"report": report_id, "status": "missing"}
    with claims.hold(*service.claim_of(report), task_id=getattr(self.request, "id", None) or "") as claim:
        if claim is None:
            return {"report": report.pk, "status": "skipped"}
        report = service.run(report)
    return {"report": report.pk, "status": report.status, "rows": report.row_count}


@shared_task(name="tagportal.governance.tasks.scheduled_reports", **RETRY)
def scheduled_reports(kinds: list[str] | None = None) -> list[int]:
    """The periodic reports: each kind over its default period ending yesterday, for
    every business line and for all of them together."""
    from .reports import service

    return [report.pk for report in service.schedule_all(kinds)]


# Registered under its first module's name, which queued messages may still carry.
@shared_task(name="tagportal.governance.impact_tasks.preview_impact", **RETRY)
def preview_impact(change_request_id: int, force: bool = False) -> dict:
    """Compute the impact previews of a change request's rule changes (see :mod:`.impact`)."""
    from . import impact
    from .models import ChangeRequest

    cr = ChangeRequest.objects.filter(pk=change_request_id).first()
    if cr is None:
        log.warning("change request %s no longer exists", change_request_id)
        return {"change_request": change_request_id, "status": "missing"}
    previews = impact.preview(cr, force=force)
    return {
        "change_request": cr.pk,
        "items": {p.get("item"): p.get("state") for p in previews if p},
    }
