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
  alone, so processing twice sends once. Each kind's rate limit
  (:func:`~.connectors.base.acquire_for`, per account) is taken before the call: a full
  window queues the delivery again, not counted as an attempt.
- In doubt: ``call_started_at`` is written (committed) just before the platform is
  called and cleared once its answer is recorded. A delivery claimed again with it set
  (its worker died after calling, or the answer was lost) may have reached the platform:
  :data:`IN_DOUBT_RESOLVERS` decide whether it is sent again, found sent, or ``failed``
  with code ``in_doubt`` for a person to look at — never sent twice blindly.
- Receipts move deliveries forward (:func:`~.receipts.apply_receipt`); a send is
  ``done`` once none of its deliveries is queued or sending (:func:`settle_sends`).

What makes a repeated call safe, per kind:

============== ======================================= ===========================================
kind           the platform's own key                  a call in doubt
============== ======================================= ===========================================
wechat_mp      ``client_msg_id`` (dropped if repeated) sent again
webhook        ``Idempotency-Key`` (the receiver keeps  sent again
               it, by our documented contract)
wecom          none                                    asked: ``get_groupmsg_list_v2`` since the
                                                       call, each message's send result; found →
                                                       sent with its msgid, else sent again
sms_aliyun     none (``OutId`` is only echoed back)    asked: ``QuerySendDetails`` of the number
                                                       that day; our ``OutId`` found → sent, else
                                                       sent again
sms_tencent    none (``SessionContext`` only echoed)   asked: ``PullSmsSendStatusByPhoneNumber``;
                                                       found → sent, else ``in_doubt`` (a report
                                                       may come late: absence proves nothing)
miniprogram    none                                    ``in_doubt``, not sent again
wecom_robot    none                                    ``in_doubt``, not sent again
youzan         none (coupon take has no request id)    ``in_doubt``, not sent again
============== ======================================= ===========================================

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

from tagportal.core.leases import claim_pks

from . import feedback, services
from . import variables as tag_variables
from .choices import ChannelKind
from .connectors.base import ChannelError, RateLimited, acquire_for
from .models import ChannelAccount, Delivery, DeliveryState, Send, SendStatus
from .receipts import IN_DOUBT, apply_early_receipts
from .receipts import apply_receipt as apply_receipt  # public here too

log = logging.getLogger(__name__)

#: Callables ``(delivery) -> reason or None`` run before each send (consent, suppression
#: register here); the first reason given fails the delivery without calling the channel.
PRE_SEND_CHECKS: list[Callable[[Delivery], str | None]] = []

#: A faster form of some of :data:`PRE_SEND_CHECKS` for a whole claimed batch:
#: ``{check: (deliveries) -> {delivery pk: reason}}``; :func:`deliver_due` runs these once
#: per batch instead of the check once per delivery.
BATCH_CHECKS: dict[Callable, Callable[[list[Delivery]], dict[int, str]]] = {}

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
    context: dict | None = None,
) -> Send:
    """A send of ``content`` through ``account`` to ``recipients`` (``(OneID, recipient)``
    pairs; a OneID given twice gets one delivery), all due now. ``kick`` queues
    :func:`~.tasks.deliver_due` once the transaction commits. ``audience``: the audience
    it goes to, if any; ``variables``: each person's tag-variable values
    (:mod:`.variables`), kept on their delivery; ``context``: where the send came from
    (a journey's ``{"journey", "version", "node", "variant", "topic"}``), copied to the
    feedback events of its deliveries (:mod:`.feedback`)."""
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
            context=context,
        )
        seen, rows = set(), []
        for oneid, recipient in recipients:
            if oneid in seen:
                continue
            seen.add(oneid)
            rows.append((oneid, recipient))
        _insert_deliveries(send, rows, variables, now)
        if kick:
            from tagportal.core import background

            from .tasks import deliver_due

            background.queue_after_commit(deliver_due)
    return send


#: Deliveries inserted per statement on PostgreSQL.
INSERT_CHUNK = 20000


def _insert_deliveries(send: Send, rows: list[tuple[int, str]], variables: dict, now: dt.datetime) -> None:
    """The queued deliveries of ``send`` to ``(OneID, recipient)`` rows: on PostgreSQL one
    ``INSERT … SELECT FROM unnest(arrays)`` per chunk (three parameters, not a dozen a
    row, and no model built per person), elsewhere ``bulk_create``."""
    if connection.vendor != "postgresql":
        Delivery.objects.bulk_create(
            [
                Delivery(
                    send=send,
                    oneid=oneid,
                    recipient=recipient,
                    idempotency_key=f"{send.pk}:{oneid}",
                    next_attempt_at=now,
                    variables=variables.get(oneid, {}),
                )
                for oneid, recipient in rows
            ],
            batch_size=1000,
        )
        return
    import json

    from django.core.serializers.json import DjangoJSONEncoder

    sql = (
        f"INSERT INTO {Delivery._meta.db_table} (send_id, oneid, recipient, idempotency_key, state, "
        "attempts, next_attempt_at, last_error_code, last_error, provider_id, variables, created, updated) "
        "SELECT %s, t.oneid, t.recipient, %s || t.oneid::text, %s, 0, %s, '', '', '', t.variables, %s, %s "
        "FROM unnest(%s::bigint[], %s::varchar[], %s::jsonb[]) AS t(oneid, recipient, variables)"
    )
    stamp = timezone.now()
    with connection.cursor() as cursor:
        for start in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[start : start + INSERT_CHUNK]
            cursor.execute(
                sql,
                [
                    send.pk,
                    f"{send.pk}:",
                    DeliveryState.QUEUED.value,
                    now,
                    stamp,
                    stamp,
                    [int(oneid) for oneid, _recipient in chunk],
                    [recipient for _oneid, recipient in chunk],
                    [
                        json.dumps(variables.get(oneid, {}), ensure_ascii=False, cls=DjangoJSONEncoder)
                        for oneid, _recipient in chunk
                    ],
                ],
            )


# claiming ------------------------------------------------------------------------
def claim_due(limit: int = 100, now: dt.datetime | None = None) -> list[Delivery]:
    """Move at most ``limit`` due deliveries to ``sending`` under a lease of
    ``TAGPORTAL_DELIVERY_LEASE_SECONDS`` and answer them (each claim counts an attempt)."""
    now = now or timezone.now()
    lease = now + dt.timedelta(seconds=_setting("TAGPORTAL_DELIVERY_LEASE_SECONDS", 300))
    due = Delivery.objects.filter(
        Q(state=DeliveryState.QUEUED, next_attempt_at__lte=now)
        | Q(state=DeliveryState.SENDING, lease_until__lt=now)
    ).order_by("next_attempt_at", "pk")
    with transaction.atomic():
        pks = claim_pks(
            due,
            limit,
            state=DeliveryState.SENDING,
            lease_until=lease,
            attempts=F("attempts") + 1,
            updated=now,
        )
        if not pks:
            return []
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


def _youzan(client, d: Delivery, content: dict) -> str:
    """A coupon of ``content["coupon_group_id"]`` to the person: by ``yz_open_id`` when
    ``content["to"]`` says so (the recipient is one), else by the number behind the
    recipient's phone hash."""
    group = str(content.get("coupon_group_id") or "")
    if not group:
        raise ValueError(_("A coupon send needs the coupon group id."))
    if content.get("to") == "yz_open_id":
        taken = client.take_coupon(group, yz_open_id=d.recipient)
    else:
        taken = client.take_coupon(group, mobile=_phone(d))
    return str(taken.get("coupon_id") or taken.get("id") or "")


#: kind → ``(client, delivery, content) -> provider message id``.
ADAPTERS: dict[str, Callable] = {
    ChannelKind.WECOM: _wecom,
    ChannelKind.WECOM_ROBOT: _robot,
    ChannelKind.WECHAT_MP: _wechat_mp,
    ChannelKind.MINIPROGRAM: _miniprogram,
    ChannelKind.WEBHOOK: _webhook,
    ChannelKind.SMS_ALIYUN: _sms_aliyun,
    ChannelKind.SMS_TENCENT: _sms_tencent,
    ChannelKind.YOUZAN: _youzan,
}


# in doubt ------------------------------------------------------------------------
RESEND, SENT, DOUBT = "resend", "sent", "in_doubt"
BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def _resend(client, d: Delivery, content: dict, since: dt.datetime, now: dt.datetime):
    return RESEND, ""


def _wecom_found(client, d: Delivery, content: dict, since: dt.datetime, now: dt.datetime):
    msgid = client.find_sent(
        content.get("sender", ""), d.recipient, int(since.timestamp()) - 60, int(now.timestamp()) + 60
    )
    return (SENT, msgid) if msgid else (RESEND, "")


def _aliyun_found(client, d: Delivery, content: dict, since: dt.datetime, now: dt.datetime):
    phone = _phone(d)
    for day in sorted({since.astimezone(BEIJING).date(), now.astimezone(BEIJING).date()}):
        if client.find_sent(phone, d.idempotency_key, day):
            return SENT, ""
    return RESEND, ""


def _tencent_found(client, d: Delivery, content: dict, since: dt.datetime, now: dt.datetime):
    found = client.find_sent(
        _phone(d), d.idempotency_key, int(since.timestamp()) - 60, int(now.timestamp()) + 60
    )
    return (SENT, found["serial_no"]) if found else (DOUBT, "")


#: kind → ``(client, delivery, content, call started, now) -> (verdict, provider id)``
#: for a delivery whose call may have reached the platform: :data:`RESEND` (the channel
#: drops a repeat, or the platform says nothing arrived), :data:`SENT` (it did), or
#: :data:`DOUBT` (cannot tell). A kind not listed cannot tell.
IN_DOUBT_RESOLVERS: dict[str, Callable] = {
    ChannelKind.WECHAT_MP: _resend,
    ChannelKind.WEBHOOK: _resend,
    ChannelKind.WECOM: _wecom_found,
    ChannelKind.SMS_ALIYUN: _aliyun_found,
    ChannelKind.SMS_TENCENT: _tencent_found,
}


def _client(delivery: Delivery):
    account = delivery.send.account
    if delivery.send.kind not in ADAPTERS:
        raise ChannelError("unsupported", _("This channel kind sends no messages."), retryable=False)
    if not account.is_active:
        raise ChannelError("inactive", _("The channel account is not active."), retryable=False)
    return services.CLIENTS[account.kind](account)


def content_of(delivery: Delivery) -> dict:
    """The send's content with the delivery's tag variables filled in."""
    content = delivery.send.content or {}
    if delivery.variables or tag_variables.codes_in(content):
        content = tag_variables.fill(content, delivery.variables)
    return content


def _call(delivery: Delivery, now: dt.datetime) -> str:
    """The account's rate taken, the start of the call recorded (committed), the call."""
    client = _client(delivery)
    acquire_for(delivery.send.account)
    if IN_DOUBT_RESOLVERS.get(delivery.send.kind) is not _resend:
        # a kind whose repeat the channel drops is simply sent again: no journal needed
        Delivery.objects.filter(pk=delivery.pk).update(call_started_at=now)
    return ADAPTERS[delivery.send.kind](client, delivery, content_of(delivery))


def _in_doubt(delivery: Delivery, now: dt.datetime) -> str | None:
    """Settle a delivery whose earlier call may have reached the platform: the state it
    ends in, or ``None`` to send it again."""
    resolver = IN_DOUBT_RESOLVERS.get(delivery.send.kind)
    verdict, provider_id = DOUBT, ""
    if resolver is not None:
        try:
            verdict, provider_id = resolver(
                _client(delivery), delivery, content_of(delivery), delivery.call_started_at, now
            )
        except ChannelError as exc:  # could not ask: ask again later (or never: in doubt)
            if not exc.retryable:
                return _doubtful(delivery, now)
            return _failed(delivery, str(exc.code), exc.message, True, exc.retry_after, now, settled=False)
    if verdict == RESEND:
        Delivery.objects.filter(pk=delivery.pk).update(call_started_at=None)
        return None
    if verdict == SENT:
        _finish(
            delivery,
            state=DeliveryState.SENT,
            provider_id=str(provider_id or "")[:100],
            sent_at=delivery.call_started_at,
            call_started_at=None,
            last_error_code="",
            last_error="",
            updated=now,
        )
        return DeliveryState.SENT
    return _doubtful(delivery, now)


def _doubtful(delivery: Delivery, now: dt.datetime) -> str:
    _finish(
        delivery,
        state=DeliveryState.FAILED,
        last_error_code=IN_DOUBT,
        last_error=_(
            "May have been sent; not resent to avoid a duplicate. Check with the platform, then retry if it was not."
        ),
        updated=now,
    )
    return DeliveryState.FAILED


# processing ----------------------------------------------------------------------
def _finish(delivery: Delivery, **fields) -> bool:
    """Write ``fields`` if the delivery is still ``sending`` under our lease."""
    return bool(
        Delivery.objects.filter(
            pk=delivery.pk, state=DeliveryState.SENDING, lease_until=delivery.lease_until
        ).update(lease_until=None, **fields)
    )


def process(
    delivery: Delivery,
    *,
    now: dt.datetime | None = None,
    claimed: bool = False,
    checked: dict[Callable, dict[int, str]] | None = None,
) -> str:
    """Send one claimed delivery (a queued one is claimed first) and answer its state
    afterwards. A delivery in any other state, or whose lease another worker took, is
    left as it is.

    ``claimed``: the delivery is the row :func:`claim_due` just answered (not read
    again); ``checked``: the answers of :data:`BATCH_CHECKS` for its batch."""
    now = now or timezone.now()
    if claimed and delivery.state == DeliveryState.SENDING and delivery.lease_until:
        current = delivery
    else:
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
    if current.call_started_at is not None:
        settled = _in_doubt(current, now)
        if settled is not None:
            return settled
    for check in PRE_SEND_CHECKS:
        if checked is not None and check in checked:
            reason = checked[check].get(current.pk)
        else:
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
        provider_id = _call(current, now)
    except RateLimited as exc:  # our own limiter: nothing sent, not an attempt
        _finish(
            current,
            call_started_at=None,
            state=DeliveryState.QUEUED,
            attempts=F("attempts") - 1,
            next_attempt_at=now + dt.timedelta(seconds=float(exc.retry_after or 1)),
            last_error_code=str(exc.code)[:64],
            last_error=exc.message[:500],
            updated=now,
        )
        return DeliveryState.QUEUED
    except ChannelError as exc:
        if exc.maybe_sent:  # the answer was lost: asked (or failed in doubt) before any resend
            if current.send.kind not in IN_DOUBT_RESOLVERS:
                return _doubtful(current, now)
            return _failed(current, str(exc.code), exc.message, True, exc.retry_after, now, settled=False)
        return _failed(current, str(exc.code), exc.message, exc.retryable, exc.retry_after, now)
    except ValueError as exc:  # the content does not fit the channel
        return _failed(current, "invalid", str(exc), False, None, now)
    except Exception as exc:  # a bug or an outage: may have sent, so settled before a resend
        log.exception("delivery %s failed", current.idempotency_key)
        return _failed(current, "error", f"{type(exc).__name__}: {exc}", True, None, now, settled=False)
    _finish(
        current,
        state=DeliveryState.SENT,
        provider_id=str(provider_id or "")[:100],
        call_started_at=None,
        sent_at=now,
        last_error_code="",
        last_error="",
        updated=now,
    )
    return DeliveryState.SENT


def _failed(delivery, code, message, retryable, retry_after, now, *, settled: bool = True) -> str:
    """``settled``: nothing reached the platform (the call's start is forgotten); else
    the next claim finds out first."""
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
    extra = {"call_started_at": None} if settled else {}
    _finish(
        delivery,
        **extra,
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
        checked = {check: many(batch) for check, many in BATCH_CHECKS.items() if check in PRE_SEND_CHECKS}
        sent = []
        for delivery in batch:
            state = process(delivery, now=now, claimed=True, checked=checked)
            counts[state] = counts.get(state, 0) + 1
            if state == DeliveryState.SENT:
                sent.append(delivery)
        if sent:
            # the platforms' message ids just written, then receipts that came before them
            written = Delivery.objects.filter(pk__in=[d.pk for d in sent]).values_list(
                "pk", "provider_id", "sent_at"
            )
            ids, sent_at = {}, {}
            for pk, provider_id, at in written:
                ids[pk], sent_at[pk] = provider_id, at
            for delivery in sent:
                delivery.provider_id = ids.get(delivery.pk, "")
            with feedback.batched():
                feedback.record(sent_at, DeliveryState.SENT)
                apply_early_receipts(sent)
        settle_sends({d.send_id for d in batch})
        if len(batch) < limit or time.monotonic() - started > budget:
            return counts


def settle_sends(send_ids: Iterable[int]) -> int:
    """Mark ``done`` the sends among ``send_ids`` none of whose deliveries is queued or
    sending (one query); how many changed."""
    send_ids = list(send_ids)
    if not send_ids:
        return 0
    busy = Delivery.objects.filter(
        send_id__in=send_ids, state__in=(DeliveryState.QUEUED, DeliveryState.SENDING)
    ).values("send_id")
    return (
        Send.objects.filter(pk__in=send_ids, status=SendStatus.QUEUED)
        .exclude(pk__in=busy)
        .update(status=SendStatus.DONE)
    )


def read_wecom_results(account: ChannelAccount) -> dict:
    """Read back each customer's result of the account's mass messages whose deliveries
    are still ``sent`` (``get_groupmsg_send_result``), as receipts: sent → delivered, not a
    friend / already received today → failed with that reason."""
    pending = (
        Delivery.objects.filter(send__account=account, state=DeliveryState.SENT)
        .exclude(provider_id="")
        .values_list("provider_id", "send__content")
        .distinct()
    )
    client = services.CLIENTS[ChannelKind.WECOM](account)
    totals = {"accepted": 0, "duplicates": 0}
    for msgid, content in pending:
        rows = client.get_groupmsg_send_result(msgid, (content or {}).get("sender", ""))
        for key, value in services.record_wecom_results(account, msgid, rows).items():
            totals[key] += value
    return totals


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
    Send.objects.filter(pk=delivery.send_id).update(status=SendStatus.QUEUED)
    return delivery
