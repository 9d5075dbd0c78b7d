"""Consent and suppression: whether a person may be contacted on a channel, checked at
send time (one person: :func:`may_contact`; an audience: :func:`may_contact_many`).

A person may *not* be contacted when (the first that applies is the reason):

- ``suppressed``: a :class:`~.models.Suppression` of the brand matches their OneID,
  the keyed hash of their phone (given, or any of their vault entries) or their openid,
  and has not expired (``until`` empty or later than ``at``);
- ``opted_out``: they opted out of the channel, or of ``all`` channels;
- ``no_consent``: the channel's policy is ``opt_in`` and they did not opt in (to the
  channel or to ``all``);
- ``no_vault`` / ``no_contact`` (SMS only): the vault is not configured, or holds no
  number of theirs.

The policy for a person with no consent row is ``TAGPORTAL_CONSENT_DEFAULT``:
``opt_out`` (anyone not opted out may be contacted: service messages, the default) or
``opt_in``, for every channel, or per channel as ``sms=opt_in,*=opt_out`` (or a dict).
Channels are consent channels (:class:`~.models.ConsentChannel`): a channel kind maps to
one (both SMS platforms are ``sms``, WeCom and its group robot ``wecom``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from . import vault
from .choices import ChannelKind
from .models import (
    Consent,
    ConsentChannel,
    ConsentSource,
    ConsentState,
    ContactEntry,
    ContactKind,
    Suppression,
    SuppressionKey,
)

OK = "ok"
SUPPRESSED = "suppressed"
OPTED_OUT = "opted_out"
NO_CONSENT = "no_consent"
NO_VAULT = "no_vault"
NO_CONTACT = "no_contact"
REASONS = (SUPPRESSED, OPTED_OUT, NO_CONSENT, NO_VAULT, NO_CONTACT)

OPT_IN, OPT_OUT = "opt_in", "opt_out"
POLICIES = (OPT_IN, OPT_OUT)
CHUNK = 2000

_KIND_TO_CHANNEL = {
    ChannelKind.WECOM: ConsentChannel.WECOM,
    ChannelKind.WECOM_ROBOT: ConsentChannel.WECOM,
    ChannelKind.WECHAT_MP: ConsentChannel.WECHAT_MP,
    ChannelKind.MINIPROGRAM: ConsentChannel.MINIPROGRAM,
    ChannelKind.SMS_ALIYUN: ConsentChannel.SMS,
    ChannelKind.SMS_TENCENT: ConsentChannel.SMS,
    ChannelKind.YOUZAN: ConsentChannel.YOUZAN,
    ChannelKind.WEIMOB: ConsentChannel.WEIMOB,
    ChannelKind.WEBHOOK: ConsentChannel.WEBHOOK,
}


def consent_channel(channel_kind: str) -> str:
    """The consent channel of a channel kind (or of a consent channel itself)."""
    if channel_kind in _KIND_TO_CHANNEL:
        return str(_KIND_TO_CHANNEL[channel_kind])
    if channel_kind in ConsentChannel.values and channel_kind != ConsentChannel.ALL:
        return str(channel_kind)
    raise ValueError(f"{channel_kind!r} is not a channel kind")


def policy(channel: str) -> str:
    """``opt_in`` or ``opt_out``: who may be contacted on ``channel`` without a consent row."""
    configured = getattr(settings, "TAGPORTAL_CONSENT_DEFAULT", OPT_OUT) or OPT_OUT
    if isinstance(configured, str):
        if "=" in configured:
            pairs = (part.split("=", 1) for part in configured.split(",") if "=" in part)
            configured = {k.strip(): v.strip() for k, v in pairs}
        else:
            configured = {"*": configured.strip()}
    chosen = configured.get(channel, configured.get("*", OPT_OUT))
    return chosen if chosen in POLICIES else OPT_OUT


def _chunks(values: list, size: int = CHUNK):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _live_suppressions(brand, at: datetime):
    return Suppression.objects.filter(brand=brand).filter(Q(until__isnull=True) | Q(until__gt=at))


@dataclass
class Allowed:
    """What :func:`may_contact_many` answers: the OneIDs that may be contacted, and how
    many were held back for each reason."""

    allowed: set[int] = field(default_factory=set)
    refused: dict[int, str] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)


def _decide(channel, state_of, suppressed: bool, has_contact: bool) -> tuple[bool, str]:
    own, every = state_of.get(channel), state_of.get(ConsentChannel.ALL)
    if suppressed:
        return False, SUPPRESSED
    if ConsentState.OPTED_OUT in (own, every):
        return False, OPTED_OUT
    if policy(channel) == OPT_IN and ConsentState.OPTED_IN not in (own, every):
        return False, NO_CONSENT
    if channel == ConsentChannel.SMS:
        if not vault.enabled():
            return False, NO_VAULT
        if not has_contact:
            return False, NO_CONTACT
    return True, OK


def may_contact(
    brand, oneid: int, channel_kind: str, phone_hash: str | None = None, openid: str | None = None, at=None
) -> tuple[bool, str]:
    """``(allowed, reason)`` for one person on one channel (see the module)."""
    result = may_contact_many(
        brand,
        [oneid],
        channel_kind,
        phone_hashes={int(oneid): [phone_hash]} if phone_hash else None,
        openids={int(oneid): [openid]} if openid else None,
        at=at,
    )
    if int(oneid) in result.allowed:
        return True, OK
    return False, result.refused[int(oneid)]


def may_contact_many(
    brand,
    oneids: Iterable[int],
    channel_kind: str,
    *,
    phone_hashes: dict[int, Iterable[str]] | None = None,
    openids: dict[int, Iterable[str]] | None = None,
    at=None,
) -> Allowed:
    """:func:`may_contact` for many people at once: one query per table (per chunk of
    :data:`CHUNK` people), never one per person. ``phone_hashes`` and ``openids`` give
    further keys per OneID that a suppression may match."""
    channel = consent_channel(channel_kind)
    at = at or timezone.now()
    people = sorted({int(o) for o in oneids})
    result = Allowed()
    for chunk in _chunks(people):
        states: dict[int, dict[str, str]] = {}
        for oneid, ch, state in Consent.objects.filter(
            brand=brand, oneid__in=chunk, channel__in=[channel, ConsentChannel.ALL]
        ).values_list("oneid", "channel", "state"):
            states.setdefault(oneid, {})[ch] = state
        keys: dict[int, set[tuple[str, str]]] = {o: {(SuppressionKey.ONEID, str(o))} for o in chunk}
        contact: set[int] = set()
        for oneid, value_hash in ContactEntry.objects.filter(
            brand=brand, oneid__in=chunk, kind=ContactKind.PHONE
        ).values_list("oneid", "value_hash"):
            contact.add(oneid)
            keys[oneid].add((SuppressionKey.PHONE, value_hash))
        for given, key_type in ((phone_hashes, SuppressionKey.PHONE), (openids, SuppressionKey.OPENID)):
            for oneid in chunk:
                for value in (given or {}).get(oneid, ()) or ():
                    if value:
                        keys[oneid].add((key_type, str(value)))
        by_type: dict[str, set[str]] = {}
        for pairs in keys.values():
            for key_type, value in pairs:
                by_type.setdefault(key_type, set()).add(value)
        condition = Q()
        for key_type, values in by_type.items():
            condition |= Q(key_type=key_type, key__in=sorted(values))
        blocked = set(_live_suppressions(brand, at).filter(condition).values_list("key_type", "key"))
        for oneid in chunk:
            ok, reason = _decide(
                channel, states.get(oneid, {}), bool(keys[oneid] & blocked), oneid in contact
            )
            if ok:
                result.allowed.add(oneid)
            else:
                result.refused[oneid] = reason
                result.counts[reason] += 1
    return result


# ---------------------------------------------------------------------------
# Consent from the channels' own callbacks

#: What a person texts back to stop SMS (上行退订), compared without case or spaces.
SMS_STOP_WORDS = frozenset({"td", "t", "n", "退订", "退", "取消", "unsubscribe", "stop", "0000"})


def is_stop_reply(text) -> bool:
    """Whether an SMS reply asks to stop messages (``TD``, ``退订`` …)."""
    return isinstance(text, str) and "".join(text.split()).lower() in SMS_STOP_WORDS


def set_from_callback(brand, oneids, channel: str, state: str) -> int:
    """Record ``state`` on ``channel`` for the people ``oneids`` of ``brand`` as said by a
    channel callback (source ``callback``); how many people it touched."""
    touched = 0
    for oneid in sorted({int(o) for o in oneids}):
        Consent.objects.update_or_create(
            brand=brand,
            oneid=oneid,
            channel=channel,
            defaults={"state": state, "source": ConsentSource.CALLBACK},
        )
        touched += 1
    return touched
