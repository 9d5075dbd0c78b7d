"""Celery entry points of governance: building reports. They take ids or nothing, call
services and are safe to run twice (a report run again rewrites the same row with the
same data)."""

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


@shared_task(name="tagportal.governance.tasks.run_report", **RETRY)
def run_report(report_id: int) -> dict:
    from .models import Report
    from .reports import service

    report = Report.objects.filter(pk=report_id).first()
    if report is None:
        log.warning("report %s no longer exists", report_id)
        return {"report": report_id, "status": "missing"}
    report = service.run(report)
    return {"report": report.pk, "status": report.status, "rows": report.row_count}


@shared_task(name="tagportal.governance.tasks.scheduled_reports", **RETRY)
def scheduled_reports(kinds: list[str] | None = None) -> list[int]:
    """The periodic reports: each kind over its default period ending yesterday, for
    every business line and for all of them together."""
    from .reports import service

    return [report.pk for report in service.schedule_all(kinds)]
