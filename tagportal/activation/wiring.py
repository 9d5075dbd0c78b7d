"""The deliveries' hooks filled by the contact vault and consent (connected when the app
is ready): every send checks consent and suppression at send time, not only when the
audience was built, and an SMS delivery's number comes from the vault, decrypted there
and then (each decryption recorded). An audience's new snapshot queues the work of its
channel syncs (:func:`.syncs.on_snapshot_taken`)."""

from __future__ import annotations

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from . import consent, deliveries, vault
from .choices import ChannelKind
from .models import ContactEntry, ContactKind, Delivery

SMS_KINDS = (ChannelKind.SMS_ALIYUN, ChannelKind.SMS_TENCENT)
OPENID_KINDS = (ChannelKind.WECHAT_MP, ChannelKind.MINIPROGRAM)

#: What a refusal reads as on the delivery.
REASONS = {
    consent.SUPPRESSED: gettext_lazy("the person is on the suppression list"),
    consent.OPTED_OUT: gettext_lazy("the person opted out of this channel"),
    consent.NO_CONSENT: gettext_lazy("the channel needs an opt-in the person has not given"),
    consent.NO_VAULT: gettext_lazy("SMS needs the contact vault, which is not configured"),
    consent.NO_CONTACT: gettext_lazy("the vault holds no number for the person"),
}


def _by_phone(send) -> bool:
    """Whether the send reaches people by the number behind their phone hash (SMS, and a
    Youzan coupon not sent by yz_open_id)."""
    if send.kind == ChannelKind.YOUZAN:
        return (send.content or {}).get("to") != "yz_open_id"
    return send.kind in SMS_KINDS


def consent_check(delivery: Delivery) -> str | None:
    """``None`` when the person may be contacted on the delivery's channel now, else why not."""
    send = delivery.send
    allowed, reason = consent.may_contact(
        send.brand,
        delivery.oneid,
        send.kind,
        phone_hash=delivery.recipient if _by_phone(send) else None,
        openid=delivery.recipient if send.kind in OPENID_KINDS else None,
    )
    if allowed:
        return None
    return _("Not contacted (%(code)s): %(reason)s.") % {
        "code": reason,
        "reason": REASONS.get(reason, reason),
    }


def consent_check_many(batch: list[Delivery]) -> dict[int, str]:
    """:func:`consent_check` for a claimed batch: ``{delivery pk: why not}`` for those
    refused, a few queries per send in the batch instead of several per delivery."""
    refused: dict[int, str] = {}
    by_send: dict[int, list[Delivery]] = {}
    for delivery in batch:
        by_send.setdefault(delivery.send_id, []).append(delivery)
    for rows in by_send.values():
        send = rows[0].send
        phones = _by_phone(send)
        result = consent.may_contact_many(
            send.brand_id,
            [d.oneid for d in rows],
            send.kind,
            phone_hashes={d.oneid: [d.recipient] for d in rows} if phones else None,
            openids={d.oneid: [d.recipient] for d in rows} if send.kind in OPENID_KINDS else None,
        )
        for delivery in rows:
            reason = result.refused.get(delivery.oneid)
            if reason:
                refused[delivery.pk] = _("Not contacted (%(code)s): %(reason)s.") % {
                    "code": reason,
                    "reason": REASONS.get(reason, reason),
                }
    return refused


def vault_phone(delivery: Delivery) -> str | None:
    """The delivery's number from the vault: the entry whose hash the delivery names, or
    the person's only one; ``None`` without a vault or an entry."""
    if not vault.enabled():
        return None
    entries = ContactEntry.objects.filter(
        brand_id=delivery.send.brand_id, oneid=delivery.oneid, kind=ContactKind.PHONE
    )
    entry = entries.filter(value_hash=delivery.recipient).first() or (
        entries.first() if entries.count() == 1 else None
    )
    if entry is None:
        return None
    return vault.reveal(entry, purpose=f"delivery {delivery.idempotency_key}")


def connect() -> None:
    """Register the hooks once; a new audience snapshot queues the syncs' work, and the
    audience page gets the channels section."""
    from tagportal.audiences.signals import DETAIL_SECTIONS, snapshot_taken

    from . import syncs
    from .portal import audience_section

    snapshot_taken.connect(syncs.on_snapshot_taken, dispatch_uid="activation.audience_syncs")
    if audience_section not in DETAIL_SECTIONS:
        DETAIL_SECTIONS.append(audience_section)
    if consent_check not in deliveries.PRE_SEND_CHECKS:
        deliveries.PRE_SEND_CHECKS.append(consent_check)
    deliveries.BATCH_CHECKS[consent_check] = consent_check_many
    if vault_phone not in deliveries.PHONE_RESOLVERS:
        deliveries.PHONE_RESOLVERS.append(vault_phone)
