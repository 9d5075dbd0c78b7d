"""Concurrent claimers never take the same instance (SKIP LOCKED on PostgreSQL; SQLite
serialises them), and concurrent ticks send each person one message."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import OperationalError, connections

from tagportal.activation.models import Delivery
from tagportal.journeys import runner
from tests.activation.helpers import account
from tests.factories import BrandFactory, BusinessLineFactory

from .helpers import chain, enter, entry, make_journey, no_quiet_hours, send

T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)


def retrying(call):
    while True:
        try:
            return call()
        except OperationalError as exc:
            # the test's in-memory SQLite shares one cache between threads and answers
            # "table is locked" at once instead of waiting; try again
            if "locked" not in str(exc):
                raise
            time.sleep(0.005)


def in_threads(n, work):
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run():
        try:
            start.wait()
            work()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_take_the_same_instance():
    brand = BrandFactory(code="b1", business_line=BusinessLineFactory(code="l1"))
    no_quiet_hours(brand)
    journey = make_journey(brand, chain(entry(), send("s", account(brand, "webhook"))))
    enter(journey, range(1, 61))
    claims: list[list[int]] = []

    def work():
        for _ in range(10):
            pks, _lease = retrying(lambda: runner.claim(T0, 5))
            claims.append(pks)

    in_threads(3, work)
    taken = [pk for batch in claims for pk in batch]
    assert len(taken) == len(set(taken)) == 60


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_send_each_person_once(sleeps):
    # the deliveries each tick queues fail on the closed port and are retried: the retry
    # policy's pauses are recorded, not waited
    brand = BrandFactory(code="b2", business_line=BusinessLineFactory(code="l2"))
    no_quiet_hours(brand)
    journey = make_journey(brand, chain(entry(), send("s", account(brand, "webhook"))))
    enter(journey, range(1, 41))

    def work():
        for _ in range(10):
            retrying(lambda: runner.tick(now=T0, limit=7))

    in_threads(3, work)
    # whoever a failed batch left under a lease is taken again once it has run out
    later = T0 + dt.timedelta(seconds=runner._lease_seconds() + 1)

    def catch_up():
        while retrying(lambda: runner.tick(now=later, limit=7)):
            pass

    in_threads(3, catch_up)
    oneids = list(Delivery.objects.values_list("oneid", flat=True))
    assert sorted(oneids) == list(range(1, 41))


@pytest.mark.django_db
def test_a_batch_the_database_failed_is_given_back_at_once(monkeypatch):
    from tagportal.journeys.models import JourneyInstance

    brand = BrandFactory(code="b3", business_line=BusinessLineFactory(code="l3"))
    no_quiet_hours(brand)
    journey = make_journey(brand, chain(entry(), send("s", account(brand, "webhook"))))
    enter(journey, range(1, 6))

    def fail(pks, lease, now):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(runner, "advance", fail)
    with pytest.raises(OperationalError):
        runner.tick(now=T0, limit=3)
    assert not JourneyInstance.objects.filter(lease_until__isnull=False).exists()
    monkeypatch.undo()
    assert runner.tick(now=T0, limit=10) == 5  # nobody waits for a lease to run out
    assert Delivery.objects.count() == 5
