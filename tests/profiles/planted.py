"""Planted OneID cases with their ground truth.

:func:`planted` makes people and the records that name their identities, the way the
channels would send them: chains across identity types (phone → unionid → CRM id →
openid → own device), the same openid value in two apps (two identities of two
people), phone numbers written in several ways, people without a phone whose device
is also seen with their phone, and families of two or three people with different
phones sharing a tablet (with records naming only the tablet).

The truth follows the rules documented in :mod:`tagportal.profiles.oneid`: each person
is one cluster of their own identities, and a shared tablet belongs to the family
member whose phone has the smallest keyed hash (the others keep their own devices).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pandas as pd

from tagportal.profiles import pii

APPS = ("wx_app_a", "wx_app_b")


@dataclass
class Planted:
    #: ``record``, ``type``, ``app``, ``value`` (as sent: phones in several formats)
    links: pd.DataFrame
    #: person → identities ``(type, app, normalised value)``
    truth: dict[int, set[tuple[str, str, str]]] = field(default_factory=dict)

    def hashed_truth(self) -> list[frozenset[tuple[str, str, str]]]:
        """The true clusters as ``(type, app, keyed hash)`` sets."""
        return [frozenset(_hashed(key) for key in keys) for keys in self.truth.values()]


def _hashed(key: tuple[str, str, str]) -> tuple[str, str, str]:
    type_, app, value = key
    return type_, app, pii.hash_values(type_, [value])[0]


def phone_variants(digits: str) -> list[str]:
    return [
        digits,
        f"+86 {digits[:3]}-{digits[3:7]}-{digits[7:]}",
        f"{digits[:3]} {digits[3:7]} {digits[7:]}",
        f"0086{digits}",
        f"({digits[:3]}){digits[3:]}",
    ]


def planted(people: int = 300, seed: int = 1) -> Planted:
    rng = random.Random(seed)
    rows: list[tuple[str, str, str, str]] = []
    truth: dict[int, set] = {}
    counter = iter(range(10**9))

    def record(*identities: tuple[str, str, str]) -> None:
        name = f"r{next(counter)}"
        rows.extend((name, type_, app, value) for type_, app, value in identities)

    def phone(p: int) -> tuple[str, str, str]:
        return ("phone", "", f"139{p:08d}")

    def sent(key: tuple[str, str, str]) -> tuple[str, str, str]:
        """A phone as some channel would write it."""
        if key[0] == "phone":
            return (key[0], key[1], rng.choice(phone_variants(key[2])))
        return key

    p = 0
    families: list[list[int]] = []
    while p < people:
        kind = rng.choice(["chain", "chain", "phoneless", "device_then_phone", "family"])
        if kind == "family" and p + 3 <= people:
            size = rng.choice([2, 3])
            families.append(list(range(p, p + size)))
            for member in range(p, p + size):
                _chain(member, record, sent, phone, truth, with_phone=True)
            p += size
            continue
        if kind == "phoneless":
            _chain(p, record, sent, phone, truth, with_phone=False)
        elif kind == "device_then_phone":
            # records without the phone, joined to it by the person's own device
            keys = [
                phone(p),
                ("wechat_unionid", "", f"u{p}"),
                ("device_id", "", f"dev{p}"),
                ("douyin_openid", "", f"dy{p}"),
            ]
            truth[p] = set(keys)
            record(sent(keys[0]), keys[1])
            record(keys[2], keys[3])
            record(sent(keys[0]), keys[2])
        else:
            _chain(p, record, sent, phone, truth, with_phone=True)
        p += 1
    for members in families:
        tablet = ("device_id", "", f"tablet{members[0]}")
        for member in members:
            record(sent(phone(member)), tablet)
        record(tablet)
        first = min(members, key=lambda m: pii.hash_values("phone", [phone(m)[2]])[0])
        truth[first].add(tablet)
    rng.shuffle(rows)
    links = pd.DataFrame(rows, columns=["record", "type", "app", "value"])
    return Planted(links=links, truth=truth)


def _chain(p, record, sent, phone, truth, *, with_phone: bool) -> None:
    """phone → unionid → CRM id → openid (in one of two apps, its value shared with the
    neighbouring person's openid in the other app) → own device → a device-only record."""
    unionid = ("wechat_unionid", "", f"u{p}")
    crm = ("crm_member_id", "", f"m{p}")
    openid = ("wechat_openid", APPS[p % 2], f"o{p // 2}")
    device = ("device_id", "", f"dev{p}")
    keys = [unionid, crm, openid, device]
    if with_phone:
        keys.insert(0, phone(p))
        record(sent(keys[0]))
        record(sent(keys[0]), unionid)
    else:
        record(unionid)
    record(unionid, crm)
    record(crm, openid)
    record(openid, device)
    record(device)
    truth[p] = set(keys)
