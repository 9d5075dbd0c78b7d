"""Sending a message to an audience now, through one channel account of its brand.

:func:`preview` counts (nothing written): the audience's members, those the account
reaches (they have its identity: an openid of its app, a WeCom external id, a phone),
and those consent and suppression allow (:func:`.consent.may_contact_many`), which is
how many would be sent. :func:`send_to_audience` makes the send: one queued delivery
per allowed person only, each with their tag-variable values (:mod:`.variables`), the
audience kept on the send, one usage of the audience's tags recorded.

Both refuse with a :class:`SendRefused` (a ``ValidationError``: the page shows it on
the form, the API answers 400) for content that does not fit the channel kind or names
an unknown tag, and with ``PermissionDenied`` for a user who may not change the
audience or add sends. An account of another brand, inactive, or of a kind that sends
no messages to people is refused too. Consent is checked again when each delivery goes
out (:mod:`.wiring`).

The content per kind (what the adapters of :mod:`.deliveries` read):

==============  ===============================================================
kind            content
==============  ===============================================================
公众号          ``template_id``, ``data`` ``{key: text}``, optional ``url``
小程序          ``template_id``, ``data`` ``{key: text}``, optional ``page``
Aliyun SMS      ``template_code``, ``params`` ``{name: text}``
Tencent SMS     ``template_id``, ``params`` ``[text, …]`` (in the template's order)
WeCom           ``text``, ``sender`` (the employee's userid)
webhook         ``text``, optional ``fields`` ``{key: text}``
==============  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.audiences import services as audience_services
from tagportal.core.permissions import may
from tagportal.usage.choices import UsageKind

from . import consent, deliveries, recipients
from . import variables as tag_variables
from .choices import ChannelKind
from .models import ChannelAccount, Send

SEND_PERMISSION = "activation.add_send"
MAX_TEXT = 2000

SMS_KINDS = (ChannelKind.SMS_ALIYUN, ChannelKind.SMS_TENCENT)
OPENID_KINDS = (ChannelKind.WECHAT_MP, ChannelKind.MINIPROGRAM)

#: kind → (required text keys, optional text keys, mapping key or None, list key or None).
CONTENT: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None, str | None]] = {
    ChannelKind.WECHAT_MP: (("template_id",), ("url",), "data", None),
    ChannelKind.MINIPROGRAM: (("template_id",), ("page",), "data", None),
    ChannelKind.SMS_ALIYUN: (("template_code",), (), "params", None),
    ChannelKind.SMS_TENCENT: (("template_id",), (), None, "params"),
    ChannelKind.WECOM: (("text", "sender"), (), None, None),
    ChannelKind.WEBHOOK: (("text",), (), "fields", None),
}

FIELD_LABELS = {
    "template_id": gettext_lazy("template ID"),
    "template_code": gettext_lazy("template code"),
    "url": gettext_lazy("link URL"),
    "page": gettext_lazy("mini-program page"),
    "text": gettext_lazy("message text"),
    "sender": gettext_lazy("sender userid"),
    "data": gettext_lazy("template data"),
    "params": gettext_lazy("template parameters"),
    "fields": gettext_lazy("extra fields"),
}


class SendRefused(ValidationError):
    """Content or an account a send cannot go out with (the message says why)."""


def sendable(kind: str) -> bool:
    """Whether an account of ``kind`` sends messages to people one by one."""
    return recipients.reaches_people(kind) and kind in CONTENT and kind in deliveries.ADAPTERS


def accounts_for(user, audience):
    """The active accounts of the audience's brand the user sees that can send to people."""
    kinds = [kind for kind in ChannelKind.values if sendable(kind)]
    return (
        ChannelAccount.objects.restrict(user, "view")
        .filter(brand_id=audience.brand_id, is_active=True, kind__in=kinds)
        .order_by("kind", "name", "pk")
    )


def may_send(user, audience) -> bool:
    """Whether ``user`` may send to ``audience``: may change it and add sends."""
    return bool(user.is_authenticated and user.has_perm(SEND_PERMISSION) and may(user, audience, "change"))


def _refuse(message: str, key: str = "content") -> SendRefused:
    return SendRefused({key: [message]})


def _text(value, name: str, required: bool) -> str:
    label = FIELD_LABELS.get(name, name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _refuse(_("The %(field)s is required for this channel.") % {"field": label}, name)
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _refuse(
            _("The %(field)s must be a text of at most %(n)s characters.") % {"field": label, "n": MAX_TEXT},
            name,
        )
    return value.strip()


def check_content(kind: str, content) -> dict:
    """The content, cleaned, if it fits the kind (:class:`SendRefused` otherwise)."""
    if kind not in CONTENT:
        raise _refuse(_("This channel kind sends no messages to people."), "account")
    if not isinstance(content, dict):
        raise _refuse(_("The content must be an object."))
    required, optional, mapping, listing = CONTENT[kind]
    allowed = set(required) | set(optional) | {mapping, listing} - {None}
    unknown = sorted(set(content) - allowed)
    if unknown:
        raise _refuse(
            _("“%(names)s” is not part of this channel's content; it takes: %(allowed)s.")
            % {"names": ", ".join(unknown), "allowed": ", ".join(sorted(allowed))}
        )
    out: dict = {}
    for name in required:
        out[name] = _text(content.get(name), name, True)
    for name in optional:
        value = _text(content.get(name), name, False)
        if value:
            out[name] = value
    if mapping:
        given = content.get(mapping) or {}
        if not isinstance(given, dict):
            raise _refuse(
                _("The %(field)s must be pairs of a name and a text.") % {"field": FIELD_LABELS[mapping]},
                mapping,
            )
        pairs = {}
        for key, value in given.items():
            if not isinstance(key, str) or not key.strip() or len(key) > 64:
                raise _refuse(
                    _("Each name of the %(field)s must be a short text.") % {"field": FIELD_LABELS[mapping]},
                    mapping,
                )
            pairs[key.strip()] = _text("" if value is None else value, mapping, False)
        if pairs:
            out[mapping] = pairs
    if listing:
        given = content.get(listing) or []
        if isinstance(given, dict):
            given = list(given.values())
        if not isinstance(given, list):
            raise _refuse(
                _("The %(field)s must be a list of texts.") % {"field": FIELD_LABELS[listing]}, listing
            )
        out[listing] = [_text("" if v is None else v, listing, False) for v in given]
    return out


def check_variables(audience, content: dict) -> list[str]:
    """The tag codes the content names, each a tag of the audience's brand (a
    :class:`SendRefused` naming the unknown ones otherwise)."""
    from tagportal.catalog.choices import TagStatus
    from tagportal.catalog.models import Tag

    codes = tag_variables.codes_in(content)
    if not codes:
        return []
    known = set(
        Tag.objects.filter(brand_id=audience.brand_id, code__in=codes)
        .exclude(status=TagStatus.RETIRED)
        .values_list("code", flat=True)
    )
    unknown = [code for code in codes if code not in known]
    if unknown:
        raise _refuse(
            _(
                "Unknown tag in a variable: %(codes)s. Use {{tag:code}} with the code of a tag of the brand “%(brand)s”."
            )
            % {"codes": ", ".join(unknown), "brand": audience.brand}
        )
    return codes


def check_account(audience, account: ChannelAccount) -> None:
    if account.brand_id != audience.brand_id:
        raise _refuse(_("The channel account belongs to another brand than the audience."), "account")
    if not account.is_active:
        raise _refuse(_("The channel account is not active."), "account")
    if not sendable(account.kind):
        raise _refuse(_("This channel kind sends no messages to people."), "account")


@dataclass
class Preview:
    """What a send to an audience would do, counted."""

    members: int = 0
    reachable: int = 0
    allowed: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    #: ``(OneID, recipient)`` of the allowed people (not shown; used to send).
    pairs: list[tuple[int, str]] = field(default_factory=list, repr=False)

    @property
    def unreachable(self) -> int:
        return self.members - self.reachable

    @property
    def will_send(self) -> int:
        return self.allowed

    def as_dict(self) -> dict:
        return {
            "members": self.members,
            "reachable": self.reachable,
            "unreachable": self.unreachable,
            "allowed": self.allowed,
            "refused": dict(self.refused),
            "will_send": self.will_send,
        }


def _count(audience, account: ChannelAccount) -> Preview:
    people = audience_services.members(audience)
    pairs = list(recipients.recipients(account, people))
    hashes = {o: [r] for o, r in pairs} if account.kind in SMS_KINDS else None
    openids = {o: [r] for o, r in pairs} if account.kind in OPENID_KINDS else None
    result = consent.may_contact_many(
        account.brand, [o for o, _r in pairs], account.kind, phone_hashes=hashes, openids=openids
    )
    allowed = [(o, r) for o, r in pairs if o in result.allowed]
    return Preview(
        members=len(people),
        reachable=len(pairs),
        allowed=len(allowed),
        refused=dict(result.counts),
        pairs=allowed,
    )


def _check(user, audience, account: ChannelAccount, content) -> dict:
    if not may_send(user, audience):
        raise PermissionDenied(_("You may not send messages to this audience."))
    check_account(audience, account)
    cleaned = check_content(account.kind, content)
    check_variables(audience, cleaned)
    return cleaned


def preview(user, audience, account: ChannelAccount, content) -> Preview:
    """The counts of :func:`send_to_audience` without sending (same checks)."""
    _check(user, audience, account, content)
    return _count(audience, account)


def send_to_audience(user, audience, account: ChannelAccount, content) -> tuple[Send, Preview]:
    """Send ``content`` through ``account`` to the audience's members that it reaches and
    may contact now; the send and its counts."""
    cleaned = _check(user, audience, account, content)
    counted = _count(audience, account)
    codes = tag_variables.codes_in(cleaned)
    values = tag_variables.values_of(audience.brand, [o for o, _r in counted.pairs], codes)
    with transaction.atomic():
        send = deliveries.create_send(
            account, cleaned, counted.pairs, user=user, audience=audience, variables=values
        )
        audience_services.record_use(audience, user, UsageKind.ACTIVATION)
    return send, counted
