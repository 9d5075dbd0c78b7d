"""A platform's receipt moves the delivery it names: :func:`apply_receipt`.

How a receipt names its delivery, per kind: the signed webhook by our idempotency key;
公众号 by the ``MsgID`` (the delivery's ``provider_id``); Aliyun SMS by ``"<out_id or
biz_id>:<phone key>"`` (our idempotency key is the ``OutId``); Tencent SMS by ``sid``
(the serial number, the ``provider_id``); WeCom by ``"<msgid>:<external_userid>"``.

States only move forward, ``sent → delivered → read → clicked``: a late ``delivered``
after ``clicked`` changes nothing; a ``failed`` receipt fails a ``sent`` delivery with the
platform's error. A delivery failed as in doubt (``in_doubt``) that a receipt shows
arrived moves on too. A receipt whose delivery is unknown changes nothing.

Each move is written back on the person's profile as a feedback event
(:mod:`.feedback`: ``message_delivered``, ``message_read``, ``message_clicked``; a
revived in-doubt delivery also ``message_sent``), once per delivery and state.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.utils import timezone

from . import feedback
from .choices import ChannelKind, ReceiptStatus
from .models import ChannelAccount, Delivery, DeliveryState

#: The code of a delivery that may have been sent but could not be confirmed.
IN_DOUBT = "in_doubt"
#: The code of a delivery a platform's receipt failed.
RECEIPT_FAILED = "receipt"

_FORWARD = [DeliveryState.SENT, DeliveryState.DELIVERED, DeliveryState.READ, DeliveryState.CLICKED]
_STAMP = {
    ReceiptStatus.DELIVERED: "delivered_at",
    ReceiptStatus.READ: "read_at",
    ReceiptStatus.CLICKED: "clicked_at",
}


def _matching(account: ChannelAccount, key: str):
    rows = Delivery.objects.filter(send__account=account)
    kind = account.kind
    if kind == ChannelKind.WEBHOOK:
        return rows.filter(idempotency_key=key)
    if kind in (ChannelKind.WECHAT_MP, ChannelKind.SMS_TENCENT):
        return rows.filter(provider_id=key)
    if kind == ChannelKind.SMS_ALIYUN:
        ref = key.rpartition(":")[0] or key
        return rows.filter(Q(idempotency_key=ref) | Q(provider_id=ref))
    if kind == ChannelKind.WECOM:
        msgid, _sep, external_userid = key.partition(":")
        return rows.filter(provider_id=msgid, recipient=external_userid)
    return rows.none()


def apply_receipt(
    account: ChannelAccount, key: str, status: str, at: dt.datetime | None = None, error: str = ""
) -> bool:
    """Move the delivery of ``account`` that ``key`` names by a receipt of ``status``
    (:class:`~.choices.ReceiptStatus`) at ``at``; whether it moved."""
    if not key:
        return False
    at = at or timezone.now()
    now = timezone.now()
    rows = _matching(account, key)
    if status == ReceiptStatus.FAILED:
        return bool(
            rows.filter(state=DeliveryState.SENT).update(
                state=DeliveryState.FAILED,
                last_error_code=RECEIPT_FAILED,
                last_error=(error or str(ReceiptStatus.FAILED.label))[:500],
                updated=now,
            )
        )
    if status not in _STAMP:
        return False
    target = DeliveryState(status)
    earlier = _FORWARD[: _FORWARD.index(target)]
    fields = {"state": target, _STAMP[status]: at, "updated": now}
    pks = list(rows.filter(state__in=earlier).values_list("pk", flat=True))
    moved = Delivery.objects.filter(pk__in=pks, state__in=earlier).update(**fields) if pks else 0
    if moved:
        feedback.record(dict.fromkeys(pks, at), target)
        return True
    # "may have been sent": it was
    pks = list(rows.filter(state=DeliveryState.FAILED, last_error_code=IN_DOUBT).values_list("pk", flat=True))
    moved = (
        Delivery.objects.filter(pk__in=pks, state=DeliveryState.FAILED, last_error_code=IN_DOUBT).update(
            last_error_code="", last_error="", **fields
        )
        if pks
        else 0
    )
    if moved:
        with feedback.batched():
            feedback.record(dict.fromkeys(pks, at), DeliveryState.SENT)
            feedback.record(dict.fromkeys(pks, at), target)
    return bool(moved)


def apply_early_receipts(sent: list[Delivery]) -> int:
    """Apply the receipts that came before their deliveries were recorded as sent (a fast
    platform, a slow worker): those stored under a just-sent delivery's idempotency key or
    platform message id, in one query for the batch; how many moved a delivery."""
    from .models import WebhookReceipt

    keys = {d.idempotency_key for d in sent} | {d.provider_id for d in sent if d.provider_id}
    if not keys:
        return 0
    accounts = {d.send.account_id: d.send.account for d in sent}
    order = {status: i for i, status in enumerate([ReceiptStatus.FAILED, *_STAMP])}
    early = sorted(
        WebhookReceipt.objects.filter(account_id__in=list(accounts), delivery__in=sorted(keys)),
        key=lambda r: order.get(r.status, 0),
    )
    return sum(
        apply_receipt(accounts[r.account_id], r.delivery, r.status, r.occurred_at, r.error) for r in early
    )
