"""The delivery pipeline: due rows claimed, sent once, retried with backoff, or dead.

- :func:`create_send`: a :class:`~.models.Send` and one queued :class:`~.models.Delivery`
  per person, each with its idempotency key ``"<send id>:<OneID>"`` (unique).
- :func:`claim_due`: the queued rows whose time has come (and the ``sending`` rows whose
  lease ran out: a worker died holding them) move to ``sending`` with a lease —
  ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so concurrent claimers never take
  the same row; SQLite's IMMEDIATE transactions serialise the claimers instead.
- :func:`process`: the pre-send checks (:data:`PRE_SEND_CHECKS`), then the account's
  client through :data:`ADAPTERS` with the idempotency key as the channel's own
  (``client_msg_id``, ``OutId``, ``SessionContext``, ``Idempotency-Key``); ``sent`` with
  the platform's message id, ``queued`` again after a retryable error (exponential
  backoff with jitter), ``dead`` once ``TAGPORTAL_DELIVERY_MAX_ATTEMPTS`` are used,
  ``failed`` on a final error. A delivery no longer ``sending`` under our lease is left
  alone, so processing twice sends once.

No long Celery countdowns: the due time is a column, read by the periodic
:func:`~.tasks.deliver_due`.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from . import services
from . import variables as tag_variables
from .choices import ChannelKind
from .connectors.base import ChannelError, RateLimited
from .models import ChannelAccount, Delivery, DeliveryState, Send

log = logging.getLogger(__name__)

#: Callables ``(delivery) -> reason or None`` run before each send (consent, suppression
#: register here); the first reason given fails the delivery without calling the channel.
PRE_SEND_CHECKS: list[Callable[[Delivery], str | None]] = []

#: ``(delivery) -> phone number`` for the SMS kinds, registered by the contact vault;
#: without it an SMS delivery fails (the recipient column only holds the number's hash).
PHONE_RESOLVERS: list[Callable[[Delivery], str | None]] = []

RETRYABLE_STATES = (DeliveryState.FAILED, DeliveryState.DEAD)


def _setting(name: str, default):
    return getattr(settings, name, default)


def max_attempts() -> int:
    return int(_setting("TAGPORTAL_DELIVERY_MAX_ATTEMPTS", 6))


def backoff(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th try failed: initial × 2^(n-1), at most
    the maximum, plus up to ``initial`` of jitter."""
    initial = float(_setting("TAGPORTAL_DELIVERY_BACKOFF_SECONDS", 30))
    maximum = float(_setting("TAGPORTAL_DELIVERY_BACKOFF_MAX_SECONDS", 3600))
    return min(maximum, initial * 2 ** max(0, attempts - 1)) + random.uniform(0, initial)


# sends ---------------------------------------------------------------------------
def create_send(
    account: ChannelAccount,
    content: dict,
    recipients: Iterable[tuple[str, str]],
    *,
    user=None,
    now: dt.datetime | None = None,
    kick: bool = True,
    audience=None,
    variables: dict[int, dict[str, str]] | None = None,
) -> Send:
    """A send of ``content`` through ``account`` to ``recipients`` (``(OneID, recipient)``
    pairs; a OneID given twice gets one delivery), all due now. ``kick`` queues
    :func:`~.tasks.deliver_due` once the transaction commits. ``audience``: the audience
    it goes to, if any; ``variables``: each person's tag-variable values
    (:mod:`.variables`), kept on their delivery."""
    now = now or timezone.now()
    variables = variables or {}
    with transaction.atomic():
        send = Send.objects.create(
            brand_id=account.brand_id,
            account=account,
            kind=account.kind,
            content=content,
            created_by=user,
            audience=audience,
        )
        seen, rows = set(), []
        for oneid, recipient in recipients:
            if oneid in seen:
                continue
            seen.add(oneid)
            rows.append(
                Delivery(
                    send=send,
                    oneid=oneid,
                    recipient=recipient,
                    idempotency_key=f"{send.pk}:{oneid}",
                    next_attempt_at=now,
                    variables=variables.get(oneid, {}),
                )
            )
        Delivery.objects.bulk_create(rows, batch_size=1000)
        if kick:
            from tagportal.core import background

            from .tasks import deliver_due

            background.queue_after_commit(deliver_due)
    return send


# claiming ------------------------------------------------------------------------
def claim_due(limit: int = 100, now: dt.datetime | None = None) -> list[Delivery]:
    """Move at most ``limit`` due deliveries to ``sending`` under a lease of
    ``TAGPORTAL_DELIVERY_LEASE_SECONDS`` and answer them (each claim counts an attempt)."""
    now = now or timezone.now()
    lease = now + dt.timedelta(seconds=_setting("TAGPORTAL_DELIVERY_LEASE_SECONDS", 300))
    with transaction.atomic():
        due = Delivery.objects.filter(
            Q(state=DeliveryState.QUEUED, next_attempt_at__lte=now)
            | Q(state=DeliveryState.SENDING, lease_until__lt=now)
        ).order_by("next_attempt_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        pks = list(due.values_list("pk", flat=True)[:limit])
        if not pks:
            return []
        Delivery.objects.filter(pk__in=pks).update(
            state=DeliveryState.SENDING, lease_until=lease, attempts=F("attempts") + 1, updated=now
        )
        # read within the transaction: a failure here gives the rows back, none is left claimed unseen
        return list(
            Delivery.objects.filter(pk__in=pks).select_related("send", "send__account").order_by("pk")
        )


def _claim_one(delivery: Delivery, now: dt.datetime) -> Delivery | None:
    """Claim one queued (or lease-expired) delivery directly (outside :func:`claim_due`)."""
    lease = now + dt.timedelta(seconds=_setting("TAGPORTAL_DELIVERY_LEASE_SECONDS", 300))
    taken = Delivery.objects.filter(
        Q(state=DeliveryState.QUEUED, next_attempt_at__lte=now)
        | Q(state=DeliveryState.SENDING, lease_until__lt=now),
        pk=delivery.pk,
    ).update(state=DeliveryState.SENDING, lease_until=lease, attempts=F("attempts") + 1, updated=now)
    if not taken:
        return None
    return Delivery.objects.select_related("send", "send__account").get(pk=delivery.pk)


# adapters ------------------------------------------------------------------------
def _phone(delivery: Delivery) -> str:
    for resolve in PHONE_RESOLVERS:
        number = resolve(delivery)
        if number:
            return number
    raise ChannelError("no_contact", _("No phone number is available for this person."), retryable=False)


def _wecom(client, d: Delivery, content: dict) -> str:
    result = client.add_msg_template(
        content.get("sender", ""), [d.recipient], content.get("text", ""), content.get("attachments", ())
    )[0]
    if d.recipient in result.get("fail_list", []):
        raise ChannelError("not_friend", _("The customer is not a friend of the sender."), retryable=False)
    return str(result.get("msgid", ""))


def _robot(client, d: Delivery, content: dict) -> str:
    client.send(content.get("msgtype", "text"), content.get("content"))
    return ""


def _wechat_mp(client, d: Delivery, content: dict) -> str:
    return client.send_template(
        d.recipient,
        content.get("template_id", ""),
        content.get("data", {}),
        client_msg_id=d.idempotency_key,
        url=content.get("url", ""),
        miniprogram=content.get("miniprogram"),
    )


def _miniprogram(client, d: Delivery, content: dict) -> str:
    services.send_subscribe_message(
        d.send.account,
        d.recipient,
        content.get("template_id", ""),
        content.get("data", {}),
        page=content.get("page", ""),
        state=content.get("miniprogram_state", "formal"),
    )
    return ""


def _webhook(client, d: Delivery, content: dict) -> str:
    event = {
        "type": "delivery",
        "delivery": d.idempotency_key,
        "send": d.send_id,
        "oneid": d.oneid,
        "recipient": d.recipient,
        "content": content,
    }
    client.post(event, idempotency_key=d.idempotency_key)
    return d.idempotency_key


def _sms_aliyun(client, d: Delivery, content: dict) -> str:
    phone = _phone(d)
    results = client.send(
        [phone], content.get("template_code", ""), content.get("params"), out_id=d.idempotency_key
    )
    return str(results[0].get("biz_id", "")) if results else ""


def _sms_tencent(client, d: Delivery, content: dict) -> str:
    phone = _phone(d)
    rows = client.send(
        [phone],
        content.get("template_id", ""),
        content.get("params", ()),
        session_context=d.idempotency_key,
    )
    if not rows:
        raise ChannelError("no_status", _("The platform answered no status for the number."), retryable=False)
    if not rows[0]["ok"]:
        raise ChannelError(rows[0]["code"], rows[0]["message"], retryable=False)
    return str(rows[0].get("serial_no", ""))


#: kind → ``(client, delivery, content) -> provider message id``.
ADAPTERS: dict[str, Callable] = {
    ChannelKind.WECOM: _wecom,
    ChannelKind.WECOM_ROBOT: _robot,
    ChannelKind.WECHAT_MP: _wechat_mp,
    ChannelKind.MINIPROGRAM: _miniprogram,
    ChannelKind.WEBHOOK: _webhook,
    ChannelKind.SMS_ALIYUN: _sms_aliyun,
    ChannelKind.SMS_TENCENT: _sms_tencent,
}


def _call(delivery: Delivery) -> str:
    account = delivery.send.account
    adapter = ADAPTERS.get(delivery.send.kind)
    if adapter is None:
        raise ChannelError("unsupported", _("This channel kind sends no messages."), retryable=False)
    if not account.is_active:
        raise ChannelError("inactive", _("The channel account is not active."), retryable=False)
    client = services.CLIENTS[account.kind](account)
    content = delivery.send.content or {}
    if delivery.variables or tag_variables.codes_in(content):
        content = tag_variables.fill(content, delivery.variables)
    return adapter(client, delivery, content)


# processing ----------------------------------------------------------------------
def _finish(delivery: Delivery, **fields) -> bool:
    """Write ``fields`` if the delivery is still ``sending`` under our lease."""
    return bool(
        Delivery.objects.filter(
            pk=delivery.pk, state=DeliveryState.SENDING, lease_until=delivery.lease_until
        ).update(lease_until=None, **fields)
    )


def process(delivery: Delivery, *, now: dt.datetime | None = None) -> str:
    """Send one claimed delivery (a queued one is claimed first) and answer its state
    afterwards. A delivery in any other state, or whose lease another worker took, is
    left as it is."""
    now = now or timezone.now()
    current = Delivery.objects.select_related("send", "send__account").filter(pk=delivery.pk).first()
    if current is None:
        return "missing"
    expired = current.state == DeliveryState.SENDING and current.lease_until and current.lease_until < now
    if (current.state == DeliveryState.QUEUED and current.next_attempt_at <= now) or expired:
        current = _claim_one(current, now)
        if current is None:
            return "taken"
    elif current.state != DeliveryState.SENDING or current.lease_until != delivery.lease_until:
        return current.state  # not due, done, or another worker's
    for check in PRE_SEND_CHECKS:
        reason = check(current)
        if reason:
            _finish(
                current,
                state=DeliveryState.FAILED,
                last_error_code="refused",
                last_error=str(reason)[:500],
                updated=now,
            )
            return DeliveryState.FAILED
    try:
        provider_id = _call(current)
    except RateLimited as exc:  # our own limiter: nothing sent, not an attempt
        _finish(
            current,
            state=DeliveryState.QUEUED,
            attempts=F("attempts") - 1,
            next_attempt_at=now + dt.timedelta(seconds=float(exc.retry_after or 1)),
            last_error_code=str(exc.code)[:64],
            last_error=exc.message[:500],
            updated=now,
        )
        return DeliveryState.QUEUED
    except ChannelError as exc:
        return _failed(current, str(exc.code), exc.message, exc.retryable, exc.retry_after, now)
    except ValueError as exc:  # the content does not fit the channel
        return _failed(current, "invalid", str(exc), False, None, now)
    except Exception as exc:  # a bug or an outage: tried again, dead in the end
        log.exception("delivery %s failed", current.idempotency_key)
        return _failed(current, "error", f"{type(exc).__name__}: {exc}", True, None, now)
    _finish(
        current,
        state=DeliveryState.SENT,
        provider_id=str(provider_id or "")[:100],
        sent_at=now,
        last_error_code="",
        last_error="",
        updated=now,
    )
    return DeliveryState.SENT


def _failed(delivery, code, message, retryable, retry_after, now) -> str:
    if not retryable:
        state, due = DeliveryState.FAILED, delivery.next_attempt_at
    elif delivery.attempts >= max_attempts():
        state, due = DeliveryState.DEAD, delivery.next_attempt_at
    else:
        wait = backoff(delivery.attempts)
        if retry_after is not None:
            wait = max(
                wait, min(float(retry_after), float(_setting("TAGPORTAL_DELIVERY_BACKOFF_MAX_SECONDS", 3600)))
            )
        state, due = DeliveryState.QUEUED, now + dt.timedelta(seconds=wait)
    _finish(
        delivery,
        state=state,
        next_attempt_at=due,
        last_error_code=code[:64],
        last_error=(message or "")[:500],
        updated=now,
    )
    return state


def deliver_due(
    limit: int | None = None, *, now: dt.datetime | None = None, budget: float | None = None
) -> dict:
    """Claim and process due deliveries, batch after batch, until none is due or
    ``budget`` seconds (``TAGPORTAL_DELIVERY_TASK_SECONDS``) have passed; the counts of
    the states reached."""
    import time

    limit = limit or int(_setting("TAGPORTAL_DELIVERY_BATCH", 200))
    budget = budget if budget is not None else float(_setting("TAGPORTAL_DELIVERY_TASK_SECONDS", 50))
    started, counts = time.monotonic(), {}
    while True:
        batch = claim_due(limit, now=now)
        for delivery in batch:
            state = process(delivery, now=now)
            counts[state] = counts.get(state, 0) + 1
        if len(batch) < limit or time.monotonic() - started > budget:
            return counts


# dead letters --------------------------------------------------------------------
class NotRetryable(ValueError):
    pass


def retry(delivery: Delivery, *, now: dt.datetime | None = None) -> Delivery:
    """A dead or failed delivery queued again now, its attempts reset
    (:class:`NotRetryable` in any other state)."""
    now = now or timezone.now()
    updated = Delivery.objects.filter(pk=delivery.pk, state__in=RETRYABLE_STATES).update(
        state=DeliveryState.QUEUED, attempts=0, next_attempt_at=now, lease_until=None, updated=now
    )
    if not updated:
        raise NotRetryable(_("Only a dead or failed delivery can be retried."))
    delivery.refresh_from_db()
    return delivery
