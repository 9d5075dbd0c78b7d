"""The contact vault: the phone numbers SMS needs, encrypted with keys of their own.

Profiles keep a phone only as a keyed hash and a mask; SMS needs the number. The vault
keeps it encrypted (Fernet through a ``MultiFernet``) with ``TAGPORTAL_VAULT_KEYS``:
Fernet keys, comma-separated, the first encrypts and every one decrypts, so keys rotate
by putting a new one first and calling :func:`rotate_all`. The keys are never derived
from ``SECRET_KEY`` nor shared with ``TAGPORTAL_SECRET_KEYS``. Without them there is no
vault: :func:`enabled` is ``False``, :func:`store` refuses, and SMS is unavailable.

Each entry also keeps the number's keyed hash (the HMAC profiles stores identities
under, so an entry matches a person's phone identity and a suppression) and its mask.
The number is decrypted only by :func:`reveal`, and each call is recorded as a
:class:`~.models.VaultAccess` (why, by whom, when). No page or API shows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.translation import gettext as _

from tagportal.profiles import pii
from tagportal.profiles.choices import IdentityType

from .models import ContactEntry, ContactKind, VaultAccess


class VaultUnavailable(RuntimeError):
    """No vault keys are configured, or none decrypts a stored value."""


class ContactRefused(ValueError):
    """A value the vault does not take (the message says why)."""


def _keys() -> tuple[bytes, ...]:
    configured = getattr(settings, "TAGPORTAL_VAULT_KEYS", None) or []
    if isinstance(configured, str):
        configured = [k.strip() for k in configured.split(",") if k.strip()]
    return tuple(k.encode() if isinstance(k, str) else k for k in configured)


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[bytes, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "TAGPORTAL_VAULT_KEYS must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated."
        ) from exc


def enabled() -> bool:
    """Whether the vault has keys (without them SMS is unavailable)."""
    return bool(_keys())


def _fernet() -> MultiFernet:
    keys = _keys()
    if not keys:
        raise VaultUnavailable(
            _("The contact vault is not configured (TAGPORTAL_VAULT_KEYS is empty): no number is stored.")
        )
    return _fernet_for(keys)


def generate_key() -> str:
    """A new key for ``TAGPORTAL_VAULT_KEYS``."""
    return Fernet.generate_key().decode()


def normalise_phone(phone: str) -> str:
    """The phone as profiles normalise it (``+86``, spaces, dashes dropped), or
    :class:`ContactRefused`."""
    value, problem = pii.normalise_one(IdentityType.PHONE, str(phone))
    if problem or not value:
        raise ContactRefused(problem or _("A phone number is required."))
    return value


def phone_hash(phone: str) -> str:
    """The keyed hash of a phone (normalised first): what profiles and suppressions compare."""
    return pii.hash_value(IdentityType.PHONE, normalise_phone(phone))


def store(brand, oneid: int, phone: str) -> ContactEntry:
    """Keep ``phone`` for the person ``oneid`` of ``brand`` (the same number again moves
    to this person and is encrypted with the current first key)."""
    fernet = _fernet()
    value = normalise_phone(phone)
    try:
        oneid = int(oneid)
    except (TypeError, ValueError):
        raise ContactRefused(_("The OneID must be a positive whole number.")) from None
    if oneid <= 0:
        raise ContactRefused(_("The OneID must be a positive whole number."))
    value_hash = pii.hash_value(IdentityType.PHONE, value)
    entry, _created = ContactEntry.objects.update_or_create(
        brand=brand,
        kind=ContactKind.PHONE,
        value_hash=value_hash,
        defaults={
            "oneid": oneid,
            "ciphertext": fernet.encrypt(value.encode()).decode(),
            "masked": pii.mask(IdentityType.PHONE, value),
        },
    )
    return entry


def reveal(entry: ContactEntry, purpose: str, actor=None) -> str:
    """The number in clear, recorded as a :class:`VaultAccess` (``actor`` ``None``: the system)."""
    purpose = str(purpose or "").strip()
    if not purpose:
        raise ValueError("reveal() needs a purpose")
    try:
        plain = _fernet().decrypt(entry.ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise VaultUnavailable(_("No configured vault key decrypts the stored number.")) from exc
    VaultAccess.objects.create(entry=entry, purpose=purpose[:200], actor=actor)
    return plain


def rotate_all(entries: Iterable[ContactEntry] | None = None) -> int:
    """Encrypt the entries (all of them by default) again with the first key; the count."""
    fernet = _fernet()
    done = 0
    queryset = entries if entries is not None else ContactEntry.objects.all().iterator(chunk_size=1000)
    with transaction.atomic():
        batch = []
        for entry in queryset:
            try:
                entry.ciphertext = fernet.rotate(entry.ciphertext.encode()).decode()
            except InvalidToken as exc:
                raise VaultUnavailable(_("No configured vault key decrypts the stored number.")) from exc
            batch.append(entry)
            if len(batch) >= 1000:
                done += ContactEntry.objects.bulk_update(batch, ["ciphertext"])
                batch = []
        if batch:
            done += ContactEntry.objects.bulk_update(batch, ["ciphertext"])
    return done
