"""Celery entry points of profiles: they take ids and call the service modules."""

from celery import shared_task


@shared_task(name="profiles.run_import_job")
def run_import_job(job_id: int) -> str | None:
    """Run a queued import (an admin upload); safe to run twice."""
    from .imports import run_stored_job

    job = run_stored_job(job_id)
    return job.status if job is not None else None
