"""The delivery pipeline against the local fakes: each message sent once, retryable
errors retried after the backoff, final ones failed, exhausted ones dead and retried
from the dead letters, a crashed worker's claim taken back after its lease, pre-send
checks, concurrent claimers, and the deliveries API."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import OperationalError, connections
from django.utils import timezone

from tagportal.activation import deliveries
from tagportal.activation.models import Delivery, DeliveryState
from tagportal.activation.tasks import DEFAULT_SCHEDULES
from tagportal.activation.tasks import deliver_due as deliver_due_task
from tests.conftest import client_for

from ..api.contract import ReadContract, ReadOnlyContract, Resource, ScopedContract, once
from .fakes import FakeReceiver, FakeWeChat
from .helpers import account

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
URL = "/api/activation/deliveries/"


@pytest.fixture(autouse=True)
def one_try_per_call(settings):
    """The clients' own retries off: the pipeline's retries are what is tested."""
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 1
    settings.TAGPORTAL_DELIVERY_BACKOFF_SECONDS = 10
    settings.TAGPORTAL_DELIVERY_BACKOFF_MAX_SECONDS = 100
    settings.TAGPORTAL_DELIVERY_LEASE_SECONDS = 60
    settings.TAGPORTAL_DELIVERY_MAX_ATTEMPTS = 3


@pytest.fixture
def receiver(httpserver):
    return FakeReceiver(httpserver)


@pytest.fixture
def hook(world, httpserver, receiver):
    return account(world.own_brand, "webhook", settings={"url": httpserver.url_for(receiver.path)})


def people(n):
    return [(1000 + i, f"crm-{i}") for i in range(n)]


def states(send):
    return sorted(send.deliveries.values_list("state", flat=True))


def test_a_send_is_delivered_once_each(hook, receiver, sleeps):
    send = deliveries.create_send(hook, {"text": "春季焕新"}, [*people(5), (1000, "crm-0")], now=T0)
    assert send.deliveries.count() == 5  # a OneID given twice is one delivery
    assert deliveries.deliver_due(now=T0) == {"sent": 5}
    assert deliveries.deliver_due(now=T0 + dt.timedelta(hours=1)) == {}
    assert receiver.calls == 5
    assert sorted(receiver.received) == sorted(f"{send.pk}:{1000 + i}" for i in range(5))
    assert receiver.received[f"{send.pk}:1003"]["recipient"] == "crm-3"
    row = send.deliveries.get(oneid=1001)
    assert (row.state, row.attempts, row.sent_at, row.lease_until) == ("sent", 1, T0, None)
    assert row.provider_id == row.idempotency_key


def test_a_retryable_error_is_retried_after_the_backoff(hook, receiver, sleeps):
    receiver.statuses = [(503, {})]
    send = deliveries.create_send(hook, {}, people(1), now=T0)
    assert deliveries.deliver_due(now=T0) == {"queued": 1}
    row = send.deliveries.get()
    assert (row.state, row.last_error_code, row.attempts) == ("queued", "503", 1)
    wait = (row.next_attempt_at - T0).total_seconds()
    assert 10 <= wait <= 20  # 10 s, plus up to 10 s of jitter
    assert deliveries.deliver_due(now=T0 + dt.timedelta(seconds=9)) == {}  # not due yet
    assert deliveries.deliver_due(now=row.next_attempt_at) == {"sent": 1}
    assert receiver.calls == 2 and len(receiver.received) == 1
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error_code) == ("sent", 2, "")


def test_the_backoff_grows_and_is_bounded(settings):
    assert 10 <= deliveries.backoff(1) <= 20
    assert 40 <= deliveries.backoff(3) <= 50
    assert 100 <= deliveries.backoff(30) <= 110


def test_a_final_error_fails_without_retry(hook, receiver, sleeps):
    receiver.statuses = [(422, {})]
    send = deliveries.create_send(hook, {}, people(1), now=T0)
    assert deliveries.deliver_due(now=T0) == {"failed": 1}
    assert deliveries.deliver_due(now=T0 + dt.timedelta(days=1)) == {}
    assert receiver.calls == 1
    assert send.deliveries.get().last_error_code == "422"


def test_exhausted_attempts_are_dead_and_a_retry_sends(hook, receiver, sleeps):
    receiver.statuses = [(500, {})] * 3
    send = deliveries.create_send(hook, {}, people(1), now=T0)
    now = T0
    for _ in range(3):
        deliveries.deliver_due(now=now)
        now += dt.timedelta(minutes=5)
    row = send.deliveries.get()
    assert (row.state, row.attempts) == ("dead", 3)
    assert deliveries.deliver_due(now=now + dt.timedelta(days=1)) == {}
    queued = Delivery.objects.create(
        send=send, oneid=1, recipient="x", idempotency_key="x", next_attempt_at=T0
    )
    with pytest.raises(deliveries.NotRetryable):
        deliveries.retry(queued)
    deliveries.retry(row, now=now)
    assert (row.state, row.attempts) == ("queued", 0)
    assert deliveries.deliver_due(now=now) == {"sent": 2}  # the retried one and "x"
    assert receiver.calls == 5 and f"{send.pk}:1000" in receiver.received


def test_a_crashed_claim_is_taken_back_after_the_lease(hook, receiver, sleeps):
    send = deliveries.create_send(hook, {}, people(3), now=T0)
    claimed = deliveries.claim_due(10, now=T0)  # the worker dies before sending
    assert len(claimed) == 3 and set(states(send)) == {"sending"}
    assert deliveries.claim_due(10, now=T0 + dt.timedelta(seconds=30)) == []  # lease still held
    assert deliveries.deliver_due(now=T0 + dt.timedelta(seconds=61)) == {"sent": 3}
    # the dead worker's objects, processed late, change nothing and send nothing
    assert {deliveries.process(d, now=T0 + dt.timedelta(seconds=62)) for d in claimed} == {"sent"}
    assert receiver.calls == 3 and states(send) == ["sent"] * 3


def test_processing_a_sent_delivery_again_sends_nothing(hook, receiver, sleeps):
    send = deliveries.create_send(hook, {}, people(1), now=T0)
    row = send.deliveries.get()
    assert deliveries.process(row, now=T0) == "sent"
    assert deliveries.process(row, now=T0) == "sent"
    assert receiver.calls == 1


def test_a_pre_send_check_refusal_fails_without_calling(hook, receiver, sleeps, monkeypatch):
    monkeypatch.setattr(
        deliveries, "PRE_SEND_CHECKS", [lambda d: "unsubscribed" if d.oneid == 1001 else None]
    )
    send = deliveries.create_send(hook, {}, people(2), now=T0)
    assert deliveries.deliver_due(now=T0) == {"sent": 1, "failed": 1}
    row = send.deliveries.get(oneid=1001)
    assert (row.state, row.last_error_code, row.last_error) == ("failed", "refused", "unsubscribed")
    assert receiver.calls == 1 and f"{send.pk}:1001" not in receiver.received


def test_wechat_template_retry_uses_client_msg_id(world, httpserver, settings, sleeps):
    settings.TAGPORTAL_WECHAT_API_BASE = httpserver.url_for("/").rstrip("/")
    fake = FakeWeChat(httpserver)
    fake.openids = {"o-1", "o-2"}
    fake.busy = 1
    mp = account(world.own_brand, "wechat_mp")
    send = deliveries.create_send(
        mp, {"template_id": "T1", "data": {"first": "你好"}}, [(2001, "o-1"), (2002, "o-2")], now=T0
    )
    assert deliveries.deliver_due(now=T0) == {"queued": 1, "sent": 1}
    assert deliveries.deliver_due(now=T0 + dt.timedelta(minutes=5)) == {"sent": 1}
    assert len(fake.sent) == 2
    assert {b["client_msg_id"] for b in fake.sent} == set(
        send.deliveries.values_list("idempotency_key", flat=True)
    )
    assert all(send.deliveries.values_list("provider_id", flat=True))


def test_sms_without_a_phone_resolver_fails(world, sleeps):
    sms = account(
        world.own_brand,
        "webhook",
        settings={"url": "http://127.0.0.1:9/x"},
    )
    send = deliveries.create_send(sms, {}, people(1), now=T0)
    send.kind = "sms_tencent"
    send.save()
    assert deliveries.deliver_due(now=T0) == {"failed": 1}
    row = send.deliveries.get()
    # consent is checked at send time: SMS without a contact vault reaches nobody
    assert row.last_error_code == "refused" and "no_vault" in row.last_error


def test_at_send_time_consent_and_the_vault_decide(world, hook, receiver, sleeps, settings):
    from tagportal.activation import consent, vault, wiring
    from tagportal.activation.models import Consent, VaultAccess

    send = deliveries.create_send(hook, {}, people(2), now=T0)
    # the person opted out after the send was made: checked when it goes, not before
    Consent.objects.create(
        brand=world.own_brand, oneid=1001, channel="webhook", state="opted_out", source="api"
    )
    assert deliveries.deliver_due(now=T0) == {"sent": 1, "failed": 1}
    refused = send.deliveries.get(oneid=1001)
    assert refused.last_error_code == "refused" and consent.OPTED_OUT in refused.last_error
    assert f"{send.pk}:1001" not in receiver.received and receiver.calls == 1
    # an SMS delivery's number comes from the vault, each decryption recorded
    settings.TAGPORTAL_VAULT_KEYS = vault.generate_key()
    entry = vault.store(world.own_brand, 1000, "13800138000")
    sms = deliveries.create_send(hook, {}, [(1000, entry.value_hash)], now=T0, kick=False)
    row = sms.deliveries.get()
    assert wiring.vault_phone(row).endswith("13800138000")
    assert VaultAccess.objects.filter(entry=entry, purpose=f"delivery {row.idempotency_key}").count() == 1


def test_the_task_and_its_schedule(hook, receiver, sleeps):
    deliveries.create_send(hook, {}, people(2), kick=False)
    assert deliver_due_task.acks_late is True
    assert deliver_due_task.apply().get() == {"sent": 2}
    from django_celery_beat.models import PeriodicTask

    entry = PeriodicTask.objects.get(name=DEFAULT_SCHEDULES[0]["name"])
    assert (entry.task, entry.interval.every, entry.interval.period) == (
        "tagportal.activation.tasks.deliver_due",
        1,
        "minutes",
    )


# concurrency ----------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_take_the_same_row(django_db_blocker):
    from tests.factories import BrandFactory, BusinessLineFactory

    brand = BrandFactory(code="b1", business_line=BusinessLineFactory(code="l1"))
    hook = account(brand, "webhook")
    deliveries.create_send(hook, {}, people(60), now=T0, kick=False)
    claims: list[list[int]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def claimer():
        try:
            start.wait()
            rounds = 0
            while rounds < 10:
                try:
                    got = deliveries.claim_due(5, now=T0)
                except OperationalError as exc:
                    # the test's in-memory SQLite shares one cache between threads and
                    # answers "table is locked" at once instead of waiting; try again
                    if "locked" not in str(exc):
                        raise
                    time.sleep(0.005)
                    continue
                rounds += 1
                claims.append([d.pk for d in got])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claimer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    taken = [pk for batch in claims for pk in batch]
    assert len(taken) == len(set(taken)) == 60
    assert set(Delivery.objects.values_list("state", flat=True)) == {DeliveryState.SENDING}


# API --------------------------------------------------------------------------------
def test_the_api_lists_the_callers_brands_and_retries_for_stewards(world, hook, receiver, sleeps):
    other = account(world.other_brand, "webhook", settings={"url": "http://127.0.0.1:9/x"})
    receiver.statuses = [(422, {})]
    mine = deliveries.create_send(hook, {}, people(2), now=T0)
    theirs = deliveries.create_send(other, {}, people(1), now=T0)
    deliveries.deliver_due(now=T0)
    failed = mine.deliveries.get(state="failed")
    sent = mine.deliveries.get(state="sent")

    steward = client_for(world.steward)
    body = steward.get(URL).json()
    assert {row["id"] for row in body["results"]} == {failed.pk, sent.pk}
    assert "recipient" not in body["results"][0] or body["results"][0]["recipient"].startswith("crm-")
    assert [r["id"] for r in steward.get(URL, {"state": "failed"}).json()["results"]] == [failed.pk]
    assert steward.get(URL, {"send": theirs.pk}).json()["results"] == []
    other_row = theirs.deliveries.get()
    assert steward.get(f"{URL}{other_row.pk}/").status_code == 404
    assert steward.post(f"{URL}{other_row.pk}/retry/").status_code == 404

    assert steward.post(f"{URL}{sent.pk}/retry/").status_code == 409
    assert client_for(world.analyst).post(f"{URL}{failed.pk}/retry/").status_code in (403, 404)
    assert client_for(world.operator).post(f"{URL}{failed.pk}/retry/").status_code == 403
    answer = steward.post(f"{URL}{failed.pk}/retry/")
    assert answer.status_code == 200 and answer.json()["state"] == "queued"
    assert steward.post(URL, {}).status_code in (403, 405)  # read-only
    assert client_for(world.nobody).get(URL).status_code == 403
    assert deliveries.process(failed, now=timezone.now()) == "sent"


def test_the_admin_lists_dead_letters_and_retries_them(world, hook, receiver, sleeps):
    from django.test import Client

    receiver.statuses = [(500, {})] * 3
    send = deliveries.create_send(hook, {}, people(1), now=T0)
    now = T0
    for _ in range(3):
        deliveries.deliver_due(now=now)
        now += dt.timedelta(minutes=5)
    other = deliveries.create_send(hook, {}, [(2009, "crm-9")], now=now)
    deliveries.deliver_due(now=now)
    dead, sent = send.deliveries.get(state="dead"), other.deliveries.get(state="sent")
    browser = Client()
    browser.force_login(world.admin)
    page = browser.get("/admin/activation/deadletter/")
    assert page.status_code == 200
    assert dead.idempotency_key in page.text and sent.idempotency_key not in page.text
    listed = browser.get("/admin/activation/delivery/", {"state__exact": "sent", "send": other.pk})
    assert sent.idempotency_key in listed.text and dead.idempotency_key not in listed.text
    browser.post(
        "/admin/activation/deadletter/",
        {"action": "retry", "_selected_action": [dead.pk]},
    )
    dead.refresh_from_db()
    assert (dead.state, dead.attempts) == ("queued", 0)
    steward = Client()
    steward.force_login(world.steward)
    assert steward.get("/admin/activation/deadletter/").status_code == 200


def _delivery(world, brand):
    hook = account(brand, "webhook", settings={"url": "http://127.0.0.1:9/x"})
    return deliveries.create_send(hook, {}, people(1), now=T0, kick=False).deliveries.get()


class TestDeliveriesContract(Resource, ReadContract, ScopedContract, ReadOnlyContract):
    url = URL
    model = Delivery

    def user(self, world):
        return world.steward

    def read_only_user(self, world):
        return world.operator  # views deliveries, retries none

    def permitted(self, world):
        return once(world, "_own_delivery", lambda: _delivery(world, world.own_brand))

    def other(self, world):
        return once(world, "_other_delivery", lambda: _delivery(world, world.other_brand))
