"""Feedback events: a delivery sent, delivered, read or clicked is written on the person's
profile as a ``message_*`` event, once per delivery and state, in bulk."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tagportal.activation import deliveries, feedback, services
from tagportal.activation.models import Delivery, Send
from tagportal.profiles.models import Customer, Event

from .fakes import FakeReceiver
from .helpers import account

pytestmark = pytest.mark.django_db

CONTEXT = {"journey": 12, "version": 2, "node": "n4", "variant": "B", "topic": "新品上市"}


@pytest.fixture(autouse=True)
def pipeline(settings, monkeypatch):
    settings.TAGPORTAL_CHANNEL_RETRY_ATTEMPTS = 1
    monkeypatch.setattr(deliveries, "PRE_SEND_CHECKS", [])


@pytest.fixture
def receiver(httpserver):
    return FakeReceiver(httpserver)


@pytest.fixture
def hook(world, httpserver, receiver):
    return account(world.own_brand, "webhook", settings={"url": httpserver.url_for(receiver.path)})


@pytest.fixture
def people(world):
    return {o: Customer.objects.create(brand=world.own_brand, oneid=o) for o in (1, 2, 3)}


def push(hook, *rows):
    return services.record_receipts(
        hook, {"receipts": [{"delivery": key, "status": status, "at": at} for key, status, at in rows]}
    )


def events(**filters):
    return list(Event.objects.filter(**filters).order_by("customer__oneid", "type", "pk"))


def test_sent_deliveries_become_message_sent_events_with_the_journey_context(hook, people, sleeps):
    send = deliveries.create_send(
        hook, {"text": "hi"}, [(1, "crm-1"), (2, "crm-2"), (99, "crm-99")], kick=False, context=CONTEXT
    )
    deliveries.deliver_due()
    sent = events(type="message_sent")
    assert [e.customer.oneid for e in sent] == [1, 2]  # OneID 99: no customer of the brand, no event
    one = sent[0]
    assert one.brand == hook.brand and one.client_id == f"delivery:{send.deliveries.get(oneid=1).pk}:sent"
    assert one.properties == {"channel": "webhook", "kind": "webhook", "send": send.pk, **CONTEXT}
    assert one.time == send.deliveries.get(oneid=1).sent_at


def test_a_send_without_context_names_its_channel_and_send_only(world, people):
    wecom = account(world.own_brand, "wecom")
    send = Send.objects.create(brand=world.own_brand, account=wecom, kind="wecom", content={})
    delivery = Delivery.objects.create(
        send=send,
        oneid=1,
        recipient="wm-1",
        idempotency_key="k-1",
        state="sent",
        next_attempt_at=timezone.now(),
    )
    feedback.record({delivery.pk: None}, "sent")
    (event,) = events(type="message_sent")
    assert (event.channel, event.properties) == (
        "wecom",
        {"channel": "wecom", "kind": "wecom", "send": send.pk},
    )


def test_receipts_write_one_event_per_state_and_only_forward(hook, people, sleeps):
    send = deliveries.create_send(hook, {}, [(1, "crm-1"), (2, "crm-2")], kick=False, context=CONTEXT)
    deliveries.deliver_due()
    first, second = f"{send.pk}:1", f"{send.pk}:2"
    push(hook, (first, "delivered", "2026-03-02T08:00:00+08:00"), (first, "clicked", "2026-03-02T09:00:00Z"))
    push(hook, (first, "clicked", "2026-03-02T09:00:00Z"))  # the same receipt again
    assert deliveries.apply_receipt(hook, first, "clicked") is False  # and applied again directly
    push(hook, (first, "read", "2026-03-02T08:30:00+08:00"))  # late: the delivery is already clicked
    push(hook, (second, "failed", "2026-03-02T08:00:00Z"))
    mine = events(customer__oneid=1)
    assert [e.type for e in mine] == ["message_clicked", "message_delivered", "message_sent"]
    clicked = mine[0]
    assert clicked.time == dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    assert clicked.properties["topic"] == "新品上市" and clicked.properties["variant"] == "B"
    assert [e.type for e in events(customer__oneid=2)] == ["message_sent"]  # a failure writes none


def test_a_merged_oneid_writes_on_the_person_it_went_into(hook, people, sleeps):
    Customer.objects.filter(pk=people[3].pk).update(merged_into=people[1])
    deliveries.create_send(hook, {}, [(3, "crm-3")], kick=False)
    deliveries.deliver_due()
    (event,) = events(type="message_sent")
    assert event.customer_id == people[1].pk


def test_an_in_doubt_delivery_a_receipt_shows_arrived_is_sent_too(hook, people):
    send = Send.objects.create(brand=hook.brand, account=hook, kind="webhook", content={}, context=CONTEXT)
    Delivery.objects.create(
        send=send,
        oneid=2,
        recipient="crm-2",
        idempotency_key="doubt-2",
        state="failed",
        last_error_code="in_doubt",
        next_attempt_at=timezone.now(),
    )
    push(hook, ("doubt-2", "delivered", "2026-03-02T08:00:00Z"))
    assert [e.type for e in events(customer__oneid=2)] == ["message_delivered", "message_sent"]


def test_a_batch_is_written_with_a_fixed_number_of_queries(world, hook):
    Customer.objects.bulk_create(Customer(brand=world.own_brand, oneid=o) for o in range(1, 201))
    send = Send.objects.create(brand=hook.brand, account=hook, kind="webhook", content={}, context=CONTEXT)
    rows = Delivery.objects.bulk_create(
        Delivery(
            send=send, oneid=o, recipient=f"crm-{o}", idempotency_key=f"b-{o}", next_attempt_at=timezone.now()
        )
        for o in range(1, 201)
    )
    ids = list(Delivery.objects.filter(send=send).values_list("pk", flat=True))
    assert len(rows) == len(ids) == 200
    with CaptureQueriesContext(connection) as queries, feedback.batched():
        feedback.record(dict.fromkeys(ids[:100]), "sent")
        feedback.record(dict.fromkeys(ids[100:]), "delivered")
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    selects = [sql for sql in statements if sql.startswith("SELECT")]
    inserts = [sql for sql in statements if sql.startswith("INSERT")]
    assert len(selects) == 2  # the deliveries, the customers
    assert 1 <= len(inserts) <= 3 and len(selects) + len(inserts) == len(statements)  # SQLite: ≤ 999 values
    assert Event.objects.filter(type__in=["message_sent", "message_delivered"]).count() == 200
    with feedback.batched():  # again: nothing more
        feedback.record(dict.fromkeys(ids[:100]), "sent")
    assert Event.objects.filter(type="message_sent").count() == 100


def test_feedback_a_dead_worker_left_unwritten_is_caught_up(hook, people, sleeps, monkeypatch):
    from django_celery_beat.models import PeriodicTask

    from tagportal.activation import tasks

    lost = []
    monkeypatch.setattr(feedback, "_write", lambda rows: lost.extend(rows))  # the worker dies before writing
    send = deliveries.create_send(hook, {}, [(1, "crm-1"), (2, "crm-2"), (99, "crm-99")], kick=False)
    deliveries.deliver_due()
    push(hook, (f"{send.pk}:1", "clicked", "2026-03-02T09:00:00Z"))
    assert len(lost) == 4 and not Event.objects.exists()
    monkeypatch.undo()

    assert tasks.catch_up_feedback() == 2  # sent for 1 and 2 (99 has no customer); the click is older
    assert feedback.catch_up(dt.datetime(2026, 3, 1, tzinfo=dt.UTC)) == 1  # the click of 2 March
    assert feedback.catch_up(dt.datetime(2026, 3, 1, tzinfo=dt.UTC)) == 0  # nothing more
    assert sorted((e.customer.oneid, e.type) for e in Event.objects.all()) == [
        (1, "message_clicked"),
        (1, "message_sent"),
        (2, "message_sent"),
    ]
    assert PeriodicTask.objects.filter(task="tagportal.activation.tasks.catch_up_feedback").exists()
