"""Personal data: normalising identity values, their keyed hash and their masked form.

Every identity is stored under ``HMAC-SHA256(TAGPORTAL_PII_KEY, "<type>:<value>")``
of its normalised value, which is what lookups and OneID resolution compare. Phone
numbers are stored *only* that way plus a masked display form (``138******78``);
other identifiers also keep their value in clear, shown only to holders of
``core.view_pii``.
"""

from __future__ import annotations

import hashlib
import hmac
import re

import pandas as pd
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from .choices import HASHED_ONLY_TYPES, IdentityType

PII_PERMISSION = "core.view_pii"
MAX_VALUE_LENGTH = 128
#: Mainland China mobile numbers: 11 digits starting with 13–19.
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")
_PHONE_JUNK = r"[\s\-()（）]"

PHONE_ERROR = _("Not a mainland China mobile number (11 digits starting with 13–19).")
LENGTH_ERROR = _("Longer than %(max)d characters.")
CONTROL_ERROR = _("Contains control characters.")


def can_view_pii(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(PII_PERMISSION))


def normalise(type_: str, values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Normalised values of one identity type and the problem with each (``None`` = fine).

    Phones lose spaces, dashes, brackets and a ``+86`` / ``0086`` / ``86`` prefix; other
    identifiers are trimmed. Empty values stay empty (the caller skips them).
    """
    text = values.astype("string").fillna("").str.strip()
    problems = pd.Series(None, index=values.index, dtype="object")
    if type_ == IdentityType.PHONE:
        text = text.str.replace(_PHONE_JUNK, "", regex=True)
        text = text.str.replace(r"^(?:\+86|0086|86)(?=1\d{10}$)", "", regex=True)
        bad = (text != "") & ~text.str.fullmatch(PHONE_RE.pattern).fillna(False)
        problems[bad.to_numpy(dtype=bool)] = str(PHONE_ERROR)
        return text, problems
    too_long = text.str.len() > MAX_VALUE_LENGTH
    problems[too_long.to_numpy(dtype=bool)] = str(LENGTH_ERROR) % {"max": MAX_VALUE_LENGTH}
    control = text.str.contains(r"[\x00-\x1f\x7f]", regex=True).fillna(False)
    problems[control.to_numpy(dtype=bool)] = str(CONTROL_ERROR)
    return text, problems


def _key() -> bytes:
    return str(settings.TAGPORTAL_PII_KEY).encode()


def hash_value(type_: str, value: str) -> str:
    """The keyed hash of one normalised value."""
    return hmac.new(_key(), f"{type_}:{value}".encode(), hashlib.sha256).hexdigest()


def hash_values(type_: str, values) -> list[str]:
    """Keyed hashes of normalised values (a C-level HMAC per value)."""
    key = _key()
    prefix = f"{type_}:"
    return [hmac.new(key, (prefix + v).encode(), hashlib.sha256).hexdigest() for v in values]


#: What a spreadsheet reads as the start of a formula; a masked value never starts with one.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Values shorter than this are masked whole.
SHORT_VALUE = 8


def mask(type_: str, value: str) -> str:
    """The display form of an identity value for whoever may not see it in clear.

    A phone number keeps at most its first 3 and last 2 digits, too few to find the
    number by trying the rest (a million candidates, and looking people up by
    identity needs its own permission). Other identifiers keep about a quarter of
    their characters in front (at most 4) and one or two at the end; short ones are
    masked whole. A masked value never starts with a formula character.

    >>> mask("phone", "15812345601")
    '158******01'
    >>> mask("wechat_unionid", "oUnion123"), mask("wechat_openid", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
    ('oU****3', 'o6_b****2M')
    >>> mask("jd_pin", "jd_b"), mask("crm_member_id", "M0012345"), mask("device_id", "")
    ('****', 'M0****5', '')
    >>> mask("crm_member_id", "=HYPERLINK(1)"), mask("jd_pin", "-1+2-3+4")
    ('*HY****1)', '*1****4')
    """
    if not value:
        return ""
    n = len(value)
    if n < SHORT_VALUE:
        return "****"
    if type_ == IdentityType.PHONE:
        shown = f"{value[:3]}{'*' * (n - 5)}{value[-2:]}"
    else:
        lead, tail = min(n // 4, 4), (2 if n >= 12 else 1)
        shown = f"{value[:lead]}****{value[-tail:]}"
    if shown.startswith(FORMULA_STARTS):
        shown = "*" + shown[1:]
    return shown


def stored_value(type_: str, value: str) -> str:
    """What is kept in clear: nothing for phones."""
    return "" if type_ in HASHED_ONLY_TYPES else value


def normalise_one(type_: str, value: str) -> tuple[str, str | None]:
    """One value: ``(normalised, problem or None)``."""
    text, problems = normalise(type_, pd.Series([value], dtype=object))
    problem = problems.iloc[0]
    return text.iloc[0], problem if isinstance(problem, str) else None
