"""What other modules do with channel accounts: test a connection, record receipts."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass

from django.db import transaction
from django.db.models import F
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from .choices import ChannelKind, ReceiptStatus
from .connectors.base import ChannelError
from .connectors.robot import RobotClient
from .connectors.webhook import WebhookClient, max_receipts
from .connectors.wechat import MiniProgramClient, OfficialAccountClient, parse_event, template_receipt
from .connectors.wecom import WeComClient
from .models import ChannelAccount, Subscription, WebhookReceipt

CLIENTS = {
    ChannelKind.WECOM: WeComClient,
    ChannelKind.WECOM_ROBOT: RobotClient,
    ChannelKind.WECHAT_MP: OfficialAccountClient,
    ChannelKind.MINIPROGRAM: MiniProgramClient,
    ChannelKind.WEBHOOK: WebhookClient,
}


@dataclass
class ConnectionCheck:
    ok: bool
    code: str | int | None = None
    message: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def test_connection(account: ChannelAccount) -> ConnectionCheck:
    """Reach the account's platform (fetch a token, or send a no-op) and say whether it
    answered; on a refusal, the platform's code and message — never a secret."""
    client_class = CLIENTS.get(account.kind)
    if client_class is None:
        return ConnectionCheck(False, "unsupported", _("This channel kind has no connector yet."))
    try:
        client_class(account).check()
    except ChannelError as exc:
        message = exc.message
        for secret in account.secret_values().values():
            if secret:
                message = message.replace(secret, "***")
        return ConnectionCheck(False, exc.code, message[:300])
    return ConnectionCheck(True)


class ReceiptsRefused(ValueError):
    pass


def _receipt(row, index: int) -> tuple[str, str, dt.datetime, str]:
    where = _("receipt %(n)s") % {"n": index + 1}
    if not isinstance(row, dict):
        raise ReceiptsRefused(_("%(where)s: not an object.") % {"where": where})
    delivery, status, at, error = row.get("delivery"), row.get("status"), row.get("at"), row.get("error", "")
    if not isinstance(delivery, str) or not 0 < len(delivery) <= 100:
        raise ReceiptsRefused(
            _("%(where)s: “delivery” must be a text of 1 to 100 characters.") % {"where": where}
        )
    if status not in ReceiptStatus.values:
        raise ReceiptsRefused(
            _("%(where)s: “status” must be one of %(values)s.")
            % {"where": where, "values": ", ".join(ReceiptStatus.values)}
        )
    moment = parse_datetime(at) if isinstance(at, str) else None
    if moment is None or moment.tzinfo is None:
        raise ReceiptsRefused(
            _("%(where)s: “at” must be an ISO 8601 time with its offset.") % {"where": where}
        )
    if not isinstance(error, str) or len(error) > 500:
        raise ReceiptsRefused(
            _("%(where)s: “error” must be a text of at most 500 characters.") % {"where": where}
        )
    return delivery, status, moment.astimezone(dt.UTC), error


def record_receipts(account: ChannelAccount, payload) -> dict:
    """Store the receipts of ``{"receipts": [{"delivery", "status", "at", "error"?}]}``,
    each (delivery, status) once: all of them, or none with :class:`ReceiptsRefused`."""
    rows = payload.get("receipts") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ReceiptsRefused(_('The body must be {"receipts": [...]} with at least one receipt.'))
    if len(rows) > max_receipts():
        raise ReceiptsRefused(_("At most %(n)s receipts per request.") % {"n": max_receipts()})
    parsed = [_receipt(row, i) for i, row in enumerate(rows)]
    accepted = 0
    with transaction.atomic():
        for delivery, status, moment, error in parsed:
            _obj, created = WebhookReceipt.objects.get_or_create(
                account=account,
                delivery=delivery,
                status=status,
                defaults={"occurred_at": moment, "error": error},
            )
            accepted += created
    return {"accepted": accepted, "duplicates": len(parsed) - accepted}


def record_wechat_event(account: ChannelAccount, body: bytes) -> bool | None:
    """Record the ``TEMPLATESENDJOBFINISH`` event in ``body`` as a receipt of its MsgID,
    once: ``True`` if it was new, ``False`` for a replay, ``None`` for any other message
    (nothing kept). A malformed body raises
    :class:`~.connectors.wechat.CallbackRefused`."""
    receipt = template_receipt(parse_event(body))
    if receipt is None:
        return None
    msgid, status, moment, error = receipt
    _obj, created = WebhookReceipt.objects.get_or_create(
        account=account, delivery=msgid, status=status, defaults={"occurred_at": moment, "error": error}
    )
    return created


#: The platform's answer when the person has no grant left (or refused the template).
NOT_SUBSCRIBED = 43101


def grant_subscription(account: ChannelAccount, openid: str, template_id: str, count: int = 1) -> int:
    """Record ``count`` more one-time grants of ``template_id`` by ``openid`` (what the
    mini-program reports after ``wx.requestSubscribeMessage`` was accepted); answers the
    grants left."""
    if account.kind != ChannelKind.MINIPROGRAM:
        raise ValueError(_("Subscriptions belong to mini-program accounts."))
    if not openid or not template_id or count < 1:
        raise ValueError(_("A subscription needs an openid, a template id and at least one grant."))
    with transaction.atomic():
        row, _created = Subscription.objects.select_for_update().get_or_create(
            account=account, openid=openid, template_id=template_id
        )
        Subscription.objects.filter(pk=row.pk).update(remaining=F("remaining") + count)
        row.refresh_from_db(fields=["remaining"])
    return row.remaining


def _take_grant(account: ChannelAccount, openid: str, template_id: str) -> bool:
    with transaction.atomic():
        return bool(
            Subscription.objects.filter(
                account=account, openid=openid, template_id=template_id, remaining__gt=0
            ).update(remaining=F("remaining") - 1)
        )


def send_subscribe_message(
    account: ChannelAccount, openid: str, template_id: str, data: dict, **options
) -> None:
    """Send a subscribe message only if the person has a grant left, using it: no grant
    is a final :class:`ChannelError` (43101) without calling. A platform refusal gives
    the grant back (43101 forgets them all); a failure that may have sent keeps it used."""
    if not _take_grant(account, openid, template_id):
        raise ChannelError(
            NOT_SUBSCRIBED, _("The person has no subscription left to this template."), retryable=False
        )
    subscription = Subscription.objects.filter(account=account, openid=openid, template_id=template_id)
    try:
        MiniProgramClient(account).send_subscribe(openid, template_id, data, **options)
    except ChannelError as exc:
        if exc.code == NOT_SUBSCRIBED:
            subscription.update(remaining=0)
        elif isinstance(exc.code, int) and not 500 <= exc.code < 600:  # refused: nothing sent
            subscription.update(remaining=F("remaining") + 1)
        raise
    except ValueError:
        subscription.update(remaining=F("remaining") + 1)
        raise
