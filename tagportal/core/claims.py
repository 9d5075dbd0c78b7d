"""Claims on running background work, their heartbeats, and the reaper that recovers the
work of dead workers.

A task that does a unit of work holds a :class:`~tagportal.core.models.WorkClaim` while it
runs (:func:`hold`): one row per unit, named by a ``key`` that every delivery of the task
computes the same way, with the owner (host name and process id) and ``heartbeat_at``,
renewed by a thread of the task's process every ``TAGPORTAL_CLAIM_HEARTBEAT_S`` seconds.

When a worker is killed (SIGKILL, out of memory, the machine lost), its heartbeats stop.
:func:`reap` (a periodic task, every minute, and at each worker's start) marks claims
whose heartbeat is older than ``TAGPORTAL_CLAIM_STALE_AFTER_S`` abandoned — at once for a
claim of a process of this machine that no longer exists — and calls the handler the
owning app registered for the claim's ``kind`` (:func:`register`): it records the work as
abandoned (a run row, a report's error, an audience's last error), clears its
"calculating" state and queues it again. The broker's own redelivery (Redis's visibility
timeout) is no longer the way work comes back; when it happens later, the redelivered
task finds its claim abandoned and does nothing (:func:`hold` yields None).

Lower apps cannot import the apps whose work they reap: the handlers are a registry the
higher apps fill in their ``AppConfig.ready``.

>>> stale_after().total_seconds() > heartbeat_interval()
True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from .background import runs_in_thread
from .choices import ClaimStatus
from .models import WorkClaim

log = logging.getLogger(__name__)

#: ``kind -> handler(claim, requeue)``: records the claim's work as abandoned and, when
#: ``requeue``, queues it again (on commit). Filled by the apps that own the work.
HANDLERS: dict[str, Callable[[WorkClaim, bool], object]] = {}
#: Finished claims are kept this long (the record of what was abandoned), then deleted.
KEEP = dt.timedelta(days=7)
#: The window in which abandonments of one subject are counted against
#: ``TAGPORTAL_CLAIM_MAX_ABANDONED``.
ABANDON_WINDOW = dt.timedelta(hours=1)


def register(kind: str, handler: Callable[[WorkClaim, bool], object]) -> None:
    HANDLERS[kind] = handler


def heartbeat_interval() -> float:
    return float(getattr(settings, "TAGPORTAL_CLAIM_HEARTBEAT_S", 30))


def stale_after() -> dt.timedelta:
    return dt.timedelta(seconds=float(getattr(settings, "TAGPORTAL_CLAIM_STALE_AFTER_S", 180)))


def owner() -> str:
    """This process: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def node() -> str:
    """This machine and process namespace (boot id and pid namespace): process ids are
    comparable only between processes of the same node."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot}/{namespace}"[:120]


def _process_gone(claim: WorkClaim) -> bool:
    """Whether the claim's owner is a process of this node that no longer exists."""
    here = node()
    if not here or claim.owner_node != here:
        return False
    try:
        pid = int(claim.owner.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


class Heartbeat(threading.Thread):
    """Renews a claim's ``heartbeat_at`` until stopped; notes when the claim was lost
    (reaped or taken over), which the task may check with :attr:`lost`."""

    def __init__(self, claim_id: int, me: str, interval: float):
        super().__init__(name=f"claim-heartbeat:{claim_id}", daemon=True)
        self.claim_id, self.me, self.interval = claim_id, me, interval
        self.stopped = threading.Event()
        self.lost = False

    def beat(self) -> bool:
        """Renew the heartbeat once; False (and :attr:`lost`) when the claim is no longer ours."""
        renewed = WorkClaim.objects.filter(
            pk=self.claim_id, status=ClaimStatus.RUNNING, owner=self.me
        ).update(heartbeat_at=timezone.now())
        if not renewed:
            self.lost = True
            log.warning("claim %s is no longer ours", self.claim_id)
        return bool(renewed)

    def run(self):
        try:
            while not self.stopped.wait(self.interval):
                try:
                    if not self.beat():
                        return
                except Exception:  # the database may be away for a moment; try again
                    log.exception("heartbeat of claim %s failed", self.claim_id)
        finally:
            connections.close_all()

    def stop(self):
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=max(5.0, self.interval))


@transaction.atomic
def acquire(
    kind: str, key: str, subject: str, payload: dict | None = None, task_id: str = ""
) -> WorkClaim | None:
    """Claim the unit of work ``key`` for this process; None when it must not run: another
    live process holds it, or it was abandoned (and queued again under another key)."""
    now = timezone.now()
    me = owner()
    fields = {
        "kind": kind,
        "subject": subject,
        "payload": payload or {},
        "status": ClaimStatus.RUNNING,
        "owner": me,
        "owner_node": node(),
        "task_id": task_id or "",
        "started_at": now,
        "heartbeat_at": now,
        "finished_at": None,
        "note": "",
    }
    claim = WorkClaim.objects.select_for_update().filter(key=key).first()
    if claim is None:
        claim, created = WorkClaim.objects.get_or_create(key=key, defaults=fields)
        if created:
            return claim
        claim = WorkClaim.objects.select_for_update().get(pk=claim.pk)
    if claim.status == ClaimStatus.ABANDONED:
        log.info("claim %s was abandoned and its work queued again: not running it", key)
        return None
    if claim.status == ClaimStatus.RUNNING and not _is_dead(claim, now):
        log.info("claim %s is held by %s: not running it twice", key, claim.owner)
        return None
    # finished (a repeated delivery runs again; the work is idempotent) or its owner died
    # before the reaper saw it (this delivery is the recovery)
    for name, value in fields.items():
        setattr(claim, name, value)
    claim.save()
    return claim


def finish(claim: WorkClaim, status: str = ClaimStatus.DONE, note: str = "") -> None:
    WorkClaim.objects.filter(pk=claim.pk, owner=claim.owner, status=ClaimStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), note=note[:2000]
    )


@contextlib.contextmanager
def hold(
    kind: str, key: str, subject: str, payload: dict | None = None, task_id: str = ""
) -> Iterator[WorkClaim | None]:
    """Hold the claim ``key`` while the block runs, renewing its heartbeat on a thread
    (in a worker, or on the background thread of a server without a broker; not when
    tasks run in place, in the caller's transaction, as in the tests). Yields None
    when the work must not run (see :func:`acquire`). The claim is done when the block
    ends, failed when it raises (a retry claims it again)."""
    claim = acquire(kind, key, subject, payload, task_id)
    if claim is None:
        yield None
        return
    beat = None
    if (not settings.CELERY_TASK_ALWAYS_EAGER or runs_in_thread()) and heartbeat_interval() > 0:
        beat = Heartbeat(claim.pk, claim.owner, heartbeat_interval())
        beat.start()
    try:
        yield claim
    except BaseException as exc:
        if beat:
            beat.stop()
        finish(claim, ClaimStatus.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    if beat:
        beat.stop()
    finish(claim)


def _is_dead(claim: WorkClaim, now: dt.datetime) -> bool:
    return claim.heartbeat_at < now - stale_after() or _process_gone(claim)


def reap(now: dt.datetime | None = None) -> list[str]:
    """Mark the claims of dead workers abandoned and have their apps record and requeue
    their work; delete finished claims older than :data:`KEEP`. Answers the keys reaped."""
    now = now or timezone.now()
    limit = int(getattr(settings, "TAGPORTAL_CLAIM_MAX_ABANDONED", 3))
    reaped = []
    for candidate in WorkClaim.objects.filter(status=ClaimStatus.RUNNING).order_by("pk"):
        if not _is_dead(candidate, now):
            continue
        try:
            with transaction.atomic():
                claim = (
                    WorkClaim.objects.select_for_update(skip_locked=True)
                    .filter(pk=candidate.pk, status=ClaimStatus.RUNNING)
                    .first()
                )
                if claim is None or not _is_dead(claim, now):
                    continue
                since = claim.heartbeat_at.isoformat(timespec="seconds")
                claim.status = ClaimStatus.ABANDONED
                claim.finished_at = now
                claim.note = f"worker {claim.owner} lost (last heartbeat {since})"
                claim.save(update_fields=["status", "finished_at", "note"])
                recent = WorkClaim.objects.filter(
                    subject=claim.subject, status=ClaimStatus.ABANDONED, finished_at__gte=now - ABANDON_WINDOW
                ).count()
                handler = HANDLERS.get(claim.kind)
                if handler is None:
                    log.warning("no handler for abandoned claims of kind %s", claim.kind)
                else:
                    handler(claim, recent <= limit)
        except Exception:  # left running; the next reap tries again
            log.exception("could not reap claim %s", candidate.key)
            continue
        log.warning("claim %s of %s abandoned (no heartbeat since %s)", claim.key, claim.owner, since)
        reaped.append(claim.key)
    WorkClaim.objects.exclude(status=ClaimStatus.RUNNING).filter(finished_at__lt=now - KEEP).delete()
    return reaped


def pause_point(name: str) -> None:
    """Test hook: sleep here when ``TAGPORTAL_TEST_PAUSE_AT`` names this point, so that a
    test can kill the worker at a known moment. Does nothing otherwise."""
    wanted = getattr(settings, "TAGPORTAL_TEST_PAUSE_AT", "")
    if not wanted or name not in {w.strip() for w in wanted.split(",")}:
        return
    seconds = float(getattr(settings, "TAGPORTAL_TEST_PAUSE_SECONDS", 60))
    log.warning("pause point %s reached in %s; sleeping %s s", name, owner(), seconds)
    time.sleep(seconds)
