"""Work that must not run inside a request: a Celery task, queued once the transaction
commits.

With a broker (``CELERY_BROKER_URL``) the task goes to a worker. Without one, Celery runs
tasks eagerly — in the request that queued them — so a long import would hold the
request (and SQLite's write lock) for minutes. Then :func:`queue_after_commit` runs the
task on a daemon thread of this process instead (``TAGPORTAL_EAGER_IN_THREAD``, on by
default; the test suite turns it off to run tasks in place): the request answers at
once, and the job's own row tells its progress. Profile imports and tag computations
requested through the API go this way.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connections, transaction

log = logging.getLogger(__name__)


def runs_in_thread() -> bool:
    """Whether a queued task runs on a thread of this process (no broker configured)."""
    return bool(settings.CELERY_TASK_ALWAYS_EAGER and getattr(settings, "TAGPORTAL_EAGER_IN_THREAD", True))


def _run(task, args: tuple, kwargs: dict) -> None:
    close_old_connections()
    try:
        task.apply(args=args, kwargs=kwargs, throw=False)
    except Exception:  # the job records its own failure; never kill the process
        log.exception("background task %s%r failed", task.name, args)
    finally:
        connections.close_all()


def start_thread(task, *args, **kwargs) -> threading.Thread:
    """Run ``task(*args, **kwargs)`` on a new daemon thread with its own database connection."""
    thread = threading.Thread(target=_run, args=(task, args, kwargs), name=f"task:{task.name}", daemon=True)
    thread.start()
    return thread


def send(task, *args, queue: str | None = None, **kwargs) -> None:
    """Queue ``task(*args, **kwargs)`` now: to the broker (on ``queue``), or on a thread of
    this process when there is none (:func:`runs_in_thread`)."""
    if runs_in_thread():
        start_thread(task, *args, **kwargs)
    else:
        task.apply_async(args=args, kwargs=kwargs, **({"queue": queue} if queue else {}))


def queue_after_commit(task, *args, queue: str | None = None, **kwargs) -> None:
    """:func:`send` ``task(*args, **kwargs)`` once the current transaction commits."""
    transaction.on_commit(lambda: send(task, *args, queue=queue, **kwargs))
