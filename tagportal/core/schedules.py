"""Default periodic tasks (django-celery-beat) created with the database.

Each app lists its entries (``name``, ``task``, ``crontab`` fields); a data migration
calls :func:`ensure_crontab_tasks` with the historical models. Existing entries,
possibly edited in the admin, are left alone."""

from __future__ import annotations

#: Days and times of the default schedules are Beijing's.
TIMEZONE = "Asia/Shanghai"


def ensure_crontab_tasks(
    entries: list[dict], periodic_task_model=None, crontab_model=None, queue: str = "default"
) -> list[str]:
    """Create the periodic tasks of ``entries`` that do not exist yet; answers the names created."""
    if periodic_task_model is None or crontab_model is None:
        from django_celery_beat.models import CrontabSchedule, PeriodicTask

        periodic_task_model, crontab_model = PeriodicTask, CrontabSchedule
    created = []
    for entry in entries:
        if periodic_task_model.objects.filter(name=entry["name"]).exists():
            continue
        fields = {"minute": "*", "hour": "*", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
        fields.update(entry["crontab"])
        crontab, _new = crontab_model.objects.get_or_create(**fields, timezone=TIMEZONE)
        periodic_task_model.objects.create(
            name=entry["name"], task=entry["task"], crontab=crontab, queue=queue, enabled=True
        )
        created.append(entry["name"])
    return created
