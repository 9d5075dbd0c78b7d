"""What other modules do with channel accounts: test a connection, record receipts (each
moves the delivery it names, :func:`~.receipts.apply_receipt`)."""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import asdict, dataclass

from django.db import transaction
from django.db.models import F
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import feedback
from .choices import ChannelKind, ReceiptStatus
from .connectors.base import ChannelError
from .connectors.robot import RobotClient
from .connectors.sms_aliyun import AliyunSmsClient, domestic
from .connectors.sms_tencent import TencentSmsClient
from .connectors.webhook import WebhookClient, max_receipts
from .connectors.wechat import MiniProgramClient, OfficialAccountClient, parse_event, template_receipt
from .connectors.wecom import WeComClient
from .connectors.weimob import WeimobClient
from .connectors.youzan import YouzanClient
from .models import ChannelAccount, Subscription, WebhookReceipt
from .receipts import apply_receipt

CLIENTS = {
    ChannelKind.WECOM: WeComClient,
    ChannelKind.WECOM_ROBOT: RobotClient,
    ChannelKind.WECHAT_MP: OfficialAccountClient,
    ChannelKind.MINIPROGRAM: MiniProgramClient,
    ChannelKind.WEBHOOK: WebhookClient,
    ChannelKind.SMS_ALIYUN: AliyunSmsClient,
    ChannelKind.SMS_TENCENT: TencentSmsClient,
    ChannelKind.YOUZAN: YouzanClient,
    ChannelKind.WEIMOB: WeimobClient,
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
    return _store(account, parsed)


# SMS status pushes ---------------------------------------------------------
BEIJING = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")


def receipt_token_matches(account: ChannelAccount, given: str | None) -> bool:
    """Whether ``given`` is the account's receipt token (constant time; never with none set)."""
    expected = account.secret("receipt_token")
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(expected, given)


def _beijing_time(value, where: str) -> dt.datetime:
    moment = None
    if isinstance(value, str):
        try:
            moment = dt.datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            moment = None
    if moment is None:
        raise ReceiptsRefused(
            _("%(where)s: the time must read “YYYY-MM-DD HH:MM:SS” (Beijing time).") % {"where": where}
        )
    return moment.replace(tzinfo=BEIJING).astimezone(dt.UTC)


def _phone_key(phone) -> str:
    """A short keyed hash of the number: a receipt never keeps the number itself."""
    from tagportal.profiles.pii import hash_value

    return hash_value("phone", domestic(str(phone)))[:16]


def _sms_rows(payload) -> list:
    if not isinstance(payload, list) or not payload:
        raise ReceiptsRefused(_("The body must be a JSON array of at least one status report."))
    if len(payload) > max_receipts():
        raise ReceiptsRefused(_("At most %(n)s receipts per request.") % {"n": max_receipts()})
    for i, row in enumerate(payload):
        if not isinstance(row, dict):
            raise ReceiptsRefused(
                _("%(where)s: not an object.") % {"where": _("receipt %(n)s") % {"n": i + 1}}
            )
    return payload


def _aliyun_receipt(row: dict, index: int) -> tuple[str, str, dt.datetime, str]:
    where = _("receipt %(n)s") % {"n": index + 1}
    ref = row.get("out_id") or row.get("biz_id")
    phone = row.get("phone_number")
    if not isinstance(ref, str) or not 0 < len(ref) <= 80 or not isinstance(phone, str) or not phone:
        raise ReceiptsRefused(
            _("%(where)s: “out_id” or “biz_id”, and “phone_number”, are needed.") % {"where": where}
        )
    if not isinstance(row.get("success"), bool):
        raise ReceiptsRefused(_("%(where)s: “success” must be true or false.") % {"where": where})
    status = ReceiptStatus.DELIVERED if row["success"] else ReceiptStatus.FAILED
    error = "" if row["success"] else f"{row.get('err_code', '')} {row.get('err_msg', '')}".strip()[:500]
    return f"{ref}:{_phone_key(phone)}", status, _beijing_time(row.get("report_time"), where), error


def _tencent_receipt(row: dict, index: int) -> tuple[str, str, dt.datetime, str]:
    where = _("receipt %(n)s") % {"n": index + 1}
    sid = row.get("sid")
    if not isinstance(sid, str) or not 0 < len(sid) <= 100:
        raise ReceiptsRefused(_("%(where)s: “sid” must be a text of 1 to 100 characters.") % {"where": where})
    report = row.get("report_status")
    if report not in ("SUCCESS", "FAIL"):
        raise ReceiptsRefused(_("%(where)s: “report_status” must be SUCCESS or FAIL.") % {"where": where})
    status = ReceiptStatus.DELIVERED if report == "SUCCESS" else ReceiptStatus.FAILED
    error = (
        "" if report == "SUCCESS" else f"{row.get('errmsg', '')} {row.get('description', '')}".strip()[:500]
    )
    return sid, status, _beijing_time(row.get("user_receive_time"), where), error


def _store(account: ChannelAccount, parsed) -> dict:
    accepted = 0
    with transaction.atomic(), feedback.batched():
        for delivery, status, moment, error in parsed:
            _obj, created = WebhookReceipt.objects.get_or_create(
                account=account,
                delivery=delivery,
                status=status,
                defaults={"occurred_at": moment, "error": error},
            )
            accepted += created
            apply_receipt(account, delivery, status, moment, error)
    return {"accepted": accepted, "duplicates": len(parsed) - accepted}


def record_sms_receipts(account: ChannelAccount, payload) -> dict:
    """Store the status reports Aliyun or Tencent pushed (a JSON array), each once: by
    ``out_id`` (or ``biz_id``) and the number's keyed hash for Aliyun, by ``sid`` for
    Tencent. All of them, or none with :class:`ReceiptsRefused`."""
    rows = _sms_rows(payload)
    parse = _aliyun_receipt if account.kind == ChannelKind.SMS_ALIYUN else _tencent_receipt
    return _store(account, [parse(row, i) for i, row in enumerate(rows)])


def record_wechat_event(account: ChannelAccount, body: bytes) -> bool | None:
    """Record the ``TEMPLATESENDJOBFINISH`` event in ``body`` as a receipt of its MsgID,
    once: ``True`` if it was new, ``False`` for a replay, ``None`` for any other message
    (nothing kept; a ``subscribe`` / ``unsubscribe`` event sets the follower's consent to
    the 公众号, see :func:`_follow_event`). A malformed body raises
    :class:`~.connectors.wechat.CallbackRefused`."""
    fields = parse_event(body)
    if _follow_event(account, fields):
        return None
    receipt = template_receipt(fields)
    if receipt is None:
        return None
    msgid, status, moment, error = receipt
    with transaction.atomic():
        _obj, created = WebhookReceipt.objects.get_or_create(
            account=account, delivery=msgid, status=status, defaults={"occurred_at": moment, "error": error}
        )
        apply_receipt(account, msgid, status, moment, error)
    return created


#: A WeCom customer's send status (``get_groupmsg_send_result``) as a receipt; ``unsent``
#: (the member has not confirmed yet) is none.
WECOM_RESULTS = {
    "sent": (ReceiptStatus.DELIVERED, ""),
    "not_friend": (
        ReceiptStatus.FAILED,
        gettext_lazy("not_friend: the customer is not a friend of the sender"),
    ),
    "already_received_today": (
        ReceiptStatus.FAILED,
        gettext_lazy("already_received_today: the customer already received a mass message today"),
    ),
}


def record_wecom_results(account: ChannelAccount, msgid: str, rows: list[dict]) -> dict:
    """Store each customer's result of the mass message ``msgid`` (the rows of
    :meth:`~.connectors.wecom.WeComClient.get_groupmsg_send_result`) as a receipt of
    ``"<msgid>:<external_userid>"``, each once; the unconfirmed ones are skipped."""
    from django.utils import timezone

    parsed = []
    for row in rows:
        result = WECOM_RESULTS.get(row.get("status"))
        if result is None or not row.get("external_userid"):
            continue
        sent_at = row.get("send_time")
        moment = dt.datetime.fromtimestamp(int(sent_at), dt.UTC) if sent_at else timezone.now()
        parsed.append((f"{msgid}:{row['external_userid']}"[:100], result[0], moment, str(result[1])))
    return _store(account, parsed)


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


# consent from the channels' callbacks ------------------------------------------
#: A 公众号 event on following or unfollowing → the follower's consent to it.
FOLLOW_EVENTS = {"subscribe": "opted_in", "unsubscribe": "opted_out"}


def _follow_event(account: ChannelAccount, fields: dict) -> bool:
    """A ``subscribe`` / ``unsubscribe`` event records the person holding the openid as
    opted in / out of the 公众号 (nobody holding it: nothing kept); ``False`` for any
    other message."""
    from tagportal.profiles.choices import IdentityType
    from tagportal.profiles.services import identity_oneids

    from .consent import set_from_callback
    from .models import ConsentChannel

    state = FOLLOW_EVENTS.get(fields.get("Event", "")) if fields.get("MsgType") == "event" else None
    if state is None:
        return False
    openid = fields.get("FromUserName", "")
    if openid and len(openid) <= 128:
        appid = str(account.settings.get("appid", ""))
        holders = identity_oneids(account.brand, IdentityType.WECHAT_OPENID, appid, [openid])
        set_from_callback(account.brand, holders.values(), ConsentChannel.WECHAT_MP, state)
    return True


def _reply_rows(payload) -> list[dict]:
    rows = payload if isinstance(payload, list) else [payload] if isinstance(payload, dict) else None
    if not rows:
        raise ReceiptsRefused(_("The body must be a JSON object or array of replies."))
    if len(rows) > max_receipts():
        raise ReceiptsRefused(_("At most %(n)s replies per request.") % {"n": max_receipts()})
    for i, row in enumerate(rows):
        where = _("reply %(n)s") % {"n": i + 1}
        if not isinstance(row, dict):
            raise ReceiptsRefused(_("%(where)s: not an object.") % {"where": where})
        phone, text = row.get("phone_number") or row.get("mobile"), row.get("content", row.get("text"))
        if not isinstance(phone, str) or not 0 < len(phone) <= 32 or not isinstance(text, str):
            raise ReceiptsRefused(
                _("%(where)s: the number (phone_number or mobile) and the text (content or text) are needed.")
                % {"where": where}
            )
        if len(text) > 1000:
            raise ReceiptsRefused(
                _("%(where)s: the text is longer than 1,000 characters.") % {"where": where}
            )
    return rows


def record_sms_replies(account: ChannelAccount, payload) -> dict:
    """The replies people texted to the account's numbers (上行短信: Aliyun's
    ``{phone_number, content, …}`` array, Tencent's ``{mobile, text, …}``): a reply asking
    to stop (``TD``, ``退订`` …) opts the people holding that number (a phone identity or a
    vault entry, compared by keyed hash) out of SMS. The numbers and texts are not kept.
    ``{"replies", "stop", "opted_out"}``; a malformed body raises :class:`ReceiptsRefused`."""
    from tagportal.profiles import pii
    from tagportal.profiles.models import Identity

    from .consent import is_stop_reply, set_from_callback
    from .models import ConsentChannel, ConsentState, ContactEntry

    rows = _reply_rows(payload)
    hashes = set()
    for row in rows:
        if is_stop_reply(row.get("content", row.get("text"))):
            number = domestic(str(row.get("phone_number") or row.get("mobile")))
            hashes.add(pii.hash_value("phone", number))
    people: set[int] = set()
    if hashes:
        people.update(
            Identity.objects.filter(brand=account.brand, type="phone", value_hash__in=hashes).values_list(
                "customer__oneid", flat=True
            )
        )
        people.update(
            ContactEntry.objects.filter(brand=account.brand, value_hash__in=hashes).values_list(
                "oneid", flat=True
            )
        )
    with transaction.atomic():
        touched = set_from_callback(account.brand, people, ConsentChannel.SMS, ConsentState.OPTED_OUT)
    stops = sum(1 for row in rows if is_stop_reply(row.get("content", row.get("text"))))
    return {"replies": len(rows), "stop": stops, "opted_out": touched}
