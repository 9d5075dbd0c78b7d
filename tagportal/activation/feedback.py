"""Feedback: what happened to a person's messages, written back on their profile as events.

When a delivery is recorded as sent (:func:`~.deliveries.deliver_due`) or a receipt moves
it forward (:func:`~.receipts.apply_receipt`), the person gets an :class:`Event` of
:data:`EVENT_TYPES` (``message_sent``, ``message_delivered``, ``message_read``,
``message_clicked``) on the brand's customer of the delivery's OneID (a OneID merged into
another person's goes to that person), so that tags can read it like any behaviour:
touches in 30 days, clicks, the topics a person clicks.

- Properties: ``channel`` (the channel as people know it: ``sms`` for either SMS
  platform), ``kind`` (the channel kind), ``send`` (the send's id) and, for a send that
  came from a journey, what its ``context`` names: ``journey``, ``version``, ``node``,
  ``variant``, ``topic``.
- Once per (delivery, state): the event's ``client_id`` is ``delivery:<id>:<state>``,
  inserted with "ignore conflicts", so a receipt applied twice writes one event. Receipts
  only move forward, so a late ``delivered`` after ``clicked`` writes nothing.
- In bulk: inside :func:`batched` (a delivery batch, a request's receipts) the events
  are written together when the block ends — one customer lookup per brand and one
  insert.
- A OneID the brand has no customer for gets no event.
- A worker that dies between recording its deliveries as sent and writing their events
  leaves them without one: :func:`catch_up` (a periodic task) writes what the recent
  deliveries' states and times say is missing.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from django.utils import timezone

from tagportal.profiles.models import Customer, Event

from .choices import ChannelKind
from .models import Delivery, DeliveryState

EVENT_TYPES = {
    DeliveryState.SENT: "message_sent",
    DeliveryState.DELIVERED: "message_delivered",
    DeliveryState.READ: "message_read",
    DeliveryState.CLICKED: "message_clicked",
}
#: The keys of a send's ``context`` copied to the events' properties.
CONTEXT_KEYS = ("journey", "version", "node", "variant", "topic")
#: A channel kind as a profile event's ``channel`` (:data:`tagportal.profiles.schema.CHANNELS`)
#: and as the ``channel`` property.
CHANNELS = {
    ChannelKind.WECOM: "wecom",
    ChannelKind.WECOM_ROBOT: "wecom",
    ChannelKind.WECHAT_MP: "wechat_oa",
    ChannelKind.MINIPROGRAM: "miniprogram",
    ChannelKind.SMS_ALIYUN: "sms",
    ChannelKind.SMS_TENCENT: "sms",
}
LOOKUP_CHUNK = 2000

#: ``(delivery id, state, time)`` waiting for the end of the :func:`batched` block.
_pending: ContextVar[list | None] = ContextVar("activation_feedback_pending", default=None)


@contextmanager
def batched() -> Iterator[None]:
    """Collect the feedback of the block and write it at its end, in bulk (nested blocks
    join the outer one)."""
    if _pending.get() is not None:
        yield
        return
    token = _pending.set([])
    try:
        yield
        rows = _pending.get()
    finally:
        _pending.reset(token)
    if rows:
        _write(rows)


def record(times: Mapping[int, dt.datetime | None], state: str) -> None:
    """The feedback events of the deliveries ``{delivery id: when}`` having reached
    ``state`` (when ``None``: now), written now or at the end of the :func:`batched` block."""
    if not times or state not in EVENT_TYPES:
        return
    now = timezone.now()
    rows = [(int(pk), str(state), at or now) for pk, at in times.items()]
    pending = _pending.get()
    if pending is not None:
        pending.extend(rows)
    else:
        _write(rows)


#: The time of each state on a delivery, and the states that come after it.
_STAMPS = {
    DeliveryState.SENT: "sent_at",
    DeliveryState.DELIVERED: "delivered_at",
    DeliveryState.READ: "read_at",
    DeliveryState.CLICKED: "clicked_at",
}
_FORWARD = list(_STAMPS)


def catch_up(since: dt.datetime, *, chunk: int = 5000) -> int:
    """Write the feedback events missing for deliveries that reached a state after
    ``since`` (by its time on the delivery); how many deliveries and states were
    missing one."""
    from django.db.models import CharField, Exists, OuterRef, Value
    from django.db.models.functions import Cast, Concat

    missing = 0
    person = Customer.objects.filter(brand_id=OuterRef("send__brand_id"), oneid=OuterRef("oneid"))
    for state, stamp in _STAMPS.items():
        written = Event.objects.filter(
            brand_id=OuterRef("send__brand_id"),
            client_id=Concat(Value("delivery:"), Cast(OuterRef("pk"), CharField()), Value(f":{state}")),
        )
        rows = list(
            Delivery.objects.filter(
                Exists(person), **{f"{stamp}__gte": since}, state__in=_FORWARD[_FORWARD.index(state) :]
            )
            .exclude(Exists(written))
            .values_list("pk", stamp)[:chunk]
        )
        if rows:
            missing += len(rows)
            _write([(pk, state, at) for pk, at in rows])
    return missing


def properties(kind: str, send_id: int, context: dict | None) -> dict:
    found = {"channel": CHANNELS.get(kind, kind), "kind": kind, "send": send_id}
    for key in CONTEXT_KEYS:
        if context and context.get(key) not in (None, ""):
            found[key] = context[key]
    return found


def _customers(brand_id: int, oneids: set[int]) -> dict[int, int]:
    """``{OneID: customer pk}`` of the brand (a merged OneID: the person it went into)."""
    found: dict[int, int] = {}
    ordered = sorted(oneids)
    for start in range(0, len(ordered), LOOKUP_CHUNK):
        rows = Customer.objects.filter(brand_id=brand_id, oneid__in=ordered[start : start + LOOKUP_CHUNK])
        for oneid, pk, merged_into in rows.values_list("oneid", "pk", "merged_into_id"):
            found[oneid] = merged_into or pk
    return found


def _write(rows: list[tuple[int, str, dt.datetime]]) -> int:
    deliveries = {
        pk: (oneid, send_id, brand_id, kind, context)
        for pk, oneid, send_id, brand_id, kind, context in Delivery.objects.filter(
            pk__in={pk for pk, _state, _at in rows}
        ).values_list("pk", "oneid", "send_id", "send__brand_id", "send__kind", "send__context")
    }
    by_brand: dict[int, set[int]] = defaultdict(set)
    for oneid, _send, brand_id, _kind, _context in deliveries.values():
        by_brand[brand_id].add(oneid)
    customers = {brand_id: _customers(brand_id, oneids) for brand_id, oneids in by_brand.items()}
    events = []
    for pk, state, at in rows:
        if pk not in deliveries:
            continue
        oneid, send_id, brand_id, kind, context = deliveries[pk]
        customer = customers[brand_id].get(oneid)
        if customer is None:
            continue
        events.append(
            Event(
                brand_id=brand_id,
                customer_id=customer,
                client_id=f"delivery:{pk}:{state}",
                type=EVENT_TYPES[state],
                channel=CHANNELS.get(kind, ""),
                time=at,
                properties=properties(kind, send_id, context),
            )
        )
    Event.objects.bulk_create(events, batch_size=1000, ignore_conflicts=True)
    return len(events)
