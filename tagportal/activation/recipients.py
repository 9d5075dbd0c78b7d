"""Who a channel account reaches for each person: the identity it addresses them by.

=================  ======================================================
kind               recipient
=================  ======================================================
WeCom              the person's ``wecom_external_id``
公众号 / 小程序     the person's ``wechat_openid`` of the account's ``appid``
SMS                the keyed hash of the person's phone (the vault has the number)
有赞 / 微盟         the phone's keyed hash (the number is read from the vault when the
                   platform is called; without one, the 有赞 open id if any)
signed webhook     the CRM member id, else the OneID as text
group robot        nobody: a robot posts to a group, not to people
=================  ======================================================

A person without the identity is left out and counted as unreachable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tagportal.profiles.choices import IdentityType
from tagportal.profiles.models import Identity

from .choices import ChannelKind
from .models import ChannelAccount

CHUNK = 5000

#: kind → (identity type, whether the type is per app (the account's ``appid``), column).
IDENTITY_OF: dict[str, tuple[str, bool, str]] = {
    ChannelKind.WECOM: (IdentityType.WECOM_EXTERNAL_ID, False, "value"),
    ChannelKind.WECHAT_MP: (IdentityType.WECHAT_OPENID, True, "value"),
    ChannelKind.MINIPROGRAM: (IdentityType.WECHAT_OPENID, True, "value"),
    ChannelKind.SMS_ALIYUN: (IdentityType.PHONE, False, "value_hash"),
    ChannelKind.SMS_TENCENT: (IdentityType.PHONE, False, "value_hash"),
    ChannelKind.YOUZAN: (IdentityType.PHONE, False, "value_hash"),
    ChannelKind.WEIMOB: (IdentityType.PHONE, False, "value_hash"),
    ChannelKind.WEBHOOK: (IdentityType.CRM_MEMBER_ID, False, "value"),
}


def reaches_people(kind: str) -> bool:
    """Whether the kind addresses people one by one (a group robot does not)."""
    return kind in IDENTITY_OF


def _chunks(values: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def recipients(account: ChannelAccount, oneids: Iterable[int]) -> Iterator[tuple[int, str]]:
    """``(OneID, recipient)`` for each person of ``oneids`` the account can reach, in
    OneID order, one recipient each (the first identity by id when a person has several;
    a webhook falls back to the OneID). Reads in chunks: memory stays bounded."""
    spec = IDENTITY_OF.get(account.kind)
    if spec is None:
        return
    type_, per_app, column = spec
    app = str(account.settings.get("appid", "")) if per_app else ""
    for chunk in _chunks(sorted({int(o) for o in oneids})):
        found: dict[int, str] = {}
        rows = (
            Identity.objects.filter(brand_id=account.brand_id, type=type_, app=app, customer__oneid__in=chunk)
            .order_by("customer__oneid", "pk")
            .values_list("customer__oneid", column)
        )
        for oneid, value in rows:
            if value:
                found.setdefault(int(oneid), value)
        for oneid in chunk:
            if oneid in found:
                yield oneid, found[oneid]
            elif account.kind == ChannelKind.WEBHOOK:
                yield oneid, str(oneid)


def reachable_count(account: ChannelAccount, oneids: Iterable[int]) -> int:
    return sum(1 for _ in recipients(account, oneids))
