"""The lease claim shared by the workers' queues: at most ``limit`` due rows updated and
their pks answered in the queryset's order; a second claimer takes other rows — on
PostgreSQL even while the first claimer's transaction is still open (SKIP LOCKED)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Concat
from django.utils import timezone

from tagportal.core.leases import claim_pks
from tagportal.core.models import WorkClaim

T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


def rows(n: int) -> list[int]:
    return [
        WorkClaim.objects.create(
            kind="test.lease", key=f"lease:{i}", subject="s", owner="", started_at=T0, heartbeat_at=T0
        ).pk
        for i in range(n)
    ]


def due():
    return WorkClaim.objects.filter(owner="").order_by("pk")


@pytest.mark.django_db
def test_claims_at_most_limit_rows_in_the_querysets_order_and_updates_only_them():
    pks = rows(5)
    later = T0 + dt.timedelta(minutes=5)
    taken = claim_pks(due(), 3, owner="first", heartbeat_at=later, note=Concat(F("key"), Value("!")))
    assert taken == pks[:3]
    claimed = WorkClaim.objects.filter(pk__in=taken)
    assert {(c.owner, c.heartbeat_at, c.note) for c in claimed} == {
        ("first", later, f"{c.key}!") for c in claimed
    }
    assert list(due().values_list("pk", flat=True)) == pks[3:]
    assert set(WorkClaim.objects.filter(pk__in=pks[3:]).values_list("heartbeat_at", flat=True)) == {T0}
    # the order is the queryset's: the last rows first
    assert claim_pks(due().order_by("-pk"), 1, owner="second") == [pks[4]]


@pytest.mark.django_db
def test_nothing_due_updates_nothing():
    rows(2)
    assert claim_pks(due().filter(kind="other"), 10, owner="x") == []
    assert claim_pks(due(), 0, owner="x") == []
    assert not WorkClaim.objects.exclude(owner="").exists()


@pytest.mark.django_db
def test_within_the_callers_transaction_a_failure_gives_the_rows_back():
    rows(2)
    with pytest.raises(RuntimeError), transaction.atomic():
        assert len(claim_pks(due(), 10, owner="lost")) == 2
        raise RuntimeError("the worker failed before reading its rows")
    assert due().count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_second_claimer_takes_other_rows_while_the_first_holds_its_own():
    """On PostgreSQL the second claimer runs while the first one's transaction is open:
    the rows it holds are still unclaimed to others (not committed), and SKIP LOCKED
    passes over them instead of waiting. SQLite allows one writer at a time, so there
    the claimers take turns and the lease written by the first keeps its rows out."""
    pks = rows(6)
    racing = connection.vendor == "postgresql"
    holding, done = threading.Event(), threading.Event()
    first: list[int] = []
    errors: list[BaseException] = []

    def first_claimer():
        try:
            with transaction.atomic():
                first.extend(claim_pks(due(), 4, owner="first", heartbeat_at=timezone.now()))
                holding.set()
                if racing:  # keep the rows locked until the second claimer is through
                    assert done.wait(timeout=30)
        except BaseException as exc:
            errors.append(exc)
            holding.set()
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_claimer)
    thread.start()
    assert holding.wait(timeout=30)
    if not racing:
        thread.join(timeout=30)
    try:
        second = claim_pks(due(), 4, owner="second")
    finally:
        done.set()
        thread.join(timeout=30)
    assert not errors, errors
    assert first == pks[:4]
    assert second == pks[4:]  # not the first claimer's rows, and it did not wait for them
    assert dict(WorkClaim.objects.values_list("pk", "owner")) == {
        **dict.fromkeys(pks[:4], "first"),
        **dict.fromkeys(pks[4:], "second"),
    }
