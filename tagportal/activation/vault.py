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
from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken, MultiFernet
from django.db import transaction
from django.utils.translation import gettext as _

from tagportal.core import secrets
from tagportal.profiles import pii
from tagportal.profiles.choices import IdentityType

from .models import ContactEntry, ContactKind, VaultAccess


class VaultUnavailable(RuntimeError):
    """No vault keys are configured, or none decrypts a stored value."""


class ContactRefused(ValueError):
    """A value the vault does not take (the message says why)."""


def _keys() -> tuple[bytes, ...]:
    return secrets.configured_keys("TAGPORTAL_VAULT_KEYS")


def enabled() -> bool:
    """Whether the vault has keys (without them SMS is unavailable)."""
    return bool(_keys())


def _fernet() -> MultiFernet:
    keys = _keys()
    if not keys:
        raise VaultUnavailable(
            _("The contact vault is not configured (TAGPORTAL_VAULT_KEYS is empty): no number is stored.")
        )
    return secrets.multi_fernet(keys, "TAGPORTAL_VAULT_KEYS")


def generate_key() -> str:
    """A new key for ``TAGPORTAL_VAULT_KEYS``."""
    return secrets.generate_key()


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


# ---------------------------------------------------------------------------
# Import

#: The most data rows one import file may hold.
IMPORT_MAX_ROWS = 100_000
IMPORT_COLUMNS = ("oneid", "phone")


class ImportRefused(ValueError):
    """An import refused whole: ``errors`` are ``{"row", "error"}`` (row 1 is the header)."""

    def __init__(self, errors: list[dict]):
        super().__init__(errors[0]["error"] if errors else "")
        self.errors = errors


def read_import(upload) -> list[list[str]]:
    """The rows of an uploaded CSV of ``oneid,phone`` (header first), through the upload
    limits of :mod:`tagportal.core.uploads`."""
    from tagportal.core import uploads

    try:
        uploads.check_size(upload)
        source = upload.open("rb") if hasattr(upload, "open") else upload
        return uploads.csv_rows(source, max_rows=IMPORT_MAX_ROWS + 1, max_columns=len(IMPORT_COLUMNS) + 8)
    except uploads.UploadError as exc:
        raise ImportRefused([{"row": None, "error": exc.message}]) from exc


PHONE_ONLY_COLUMNS = ("phone",)


@dataclass
class Imported:
    """What an import stored, and (a file of phones only) how many numbers no person of
    the brand holds, with their rows: those are left out."""

    stored: int
    unmatched: int = 0
    unmatched_rows: list[int] = field(default_factory=list)


def _header_error() -> ImportRefused:
    return ImportRefused(
        [
            {
                "row": 1,
                "error": _("The header must be exactly %(cols)s, or %(phone)s alone.")
                % {"cols": ",".join(IMPORT_COLUMNS), "phone": PHONE_ONLY_COLUMNS[0]},
            }
        ]
    )


def import_rows(brand, table: list[list[str]], *, user=None) -> Imported:
    """Store every row of ``table`` or none: :class:`ImportRefused` lists each bad row.

    - ``oneid,phone``: a OneID merged into another person is stored under the person it
      is now; one the brand does not know is refused.
    - ``phone`` alone: each number goes to the person of the brand whose phone identity
      it is (compared by keyed hash). That answers who holds a number, so it is an
      identity lookup: it needs ``profiles.lookup_identity`` and is recorded (never the
      numbers); numbers nobody holds are left out and counted."""
    from tagportal.profiles.services import live_oneids

    _fernet()  # no vault: refused before reading anything
    if not table:
        raise ImportRefused([{"row": None, "error": _("The file is empty.")}])
    header = [str(h or "").strip().lower() for h in table[0]]
    while header and not header[-1]:
        header.pop()
    if header == list(PHONE_ONLY_COLUMNS):
        return _import_phones(brand, table, user)
    if header != list(IMPORT_COLUMNS):
        raise _header_error()
    errors: list[dict] = []
    parsed: list[tuple[int, int, str]] = []
    for number, row in enumerate(table[1:], start=2):
        cells = [str(c or "").strip() for c in row] + ["", ""]
        if not any(cells):
            continue
        oneid_text, phone = cells[0], cells[1]
        if not oneid_text.isdigit() or not 0 < int(oneid_text) < 2**63:
            errors.append({"row": number, "error": _("The OneID must be a positive whole number.")})
            continue
        try:
            parsed.append((number, int(oneid_text), normalise_phone(phone)))
        except ContactRefused as exc:
            errors.append({"row": number, "error": str(exc)})
    live = live_oneids(brand, {oneid for _n, oneid, _p in parsed})
    seen: dict[str, int] = {}
    for number, oneid, phone in parsed:
        if oneid not in live:
            errors.append({"row": number, "error": _("The brand has no person with this OneID.")})
        elif phone in seen:
            errors.append(
                {"row": number, "error": _("The same number is on row %(row)s.") % {"row": seen[phone]}}
            )
        else:
            seen[phone] = number
    if errors:
        raise ImportRefused(sorted(errors, key=lambda e: e["row"] or 0))
    with transaction.atomic():
        for _number, oneid, phone in parsed:
            store(brand, live[oneid], phone)
    return Imported(len(parsed))


def _import_phones(brand, table: list[list[str]], user) -> Imported:
    from tagportal.profiles import lookups
    from tagportal.profiles.choices import IdentityType, LookupEndpoint
    from tagportal.profiles.services import identity_oneids

    rows = [(n, [str(c or "").strip() for c in row]) for n, row in enumerate(table[1:], start=2)]
    rows = [(n, cells) for n, cells in rows if any(cells)]
    lookups.check(user, LookupEndpoint.VAULT_IMPORT, len(rows), brand=brand)
    errors: list[dict] = []
    parsed: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, cells in rows:
        if any(cells[1:]):
            errors.append({"row": number, "error": _("A file of phones only has one column.")})
            continue
        try:
            phone = normalise_phone(cells[0])
        except ContactRefused as exc:
            errors.append({"row": number, "error": str(exc)})
            continue
        if phone in seen:
            errors.append(
                {"row": number, "error": _("The same number is on row %(row)s.") % {"row": seen[phone]}}
            )
            continue
        seen[phone] = number
        parsed.append((number, phone))
    if errors:
        raise ImportRefused(errors)
    holders = identity_oneids(brand, IdentityType.PHONE, "", [phone for _n, phone in parsed])
    lookups.record(user, LookupEndpoint.VAULT_IMPORT, len(parsed), found=len(holders), brand=brand)
    unmatched = [number for number, phone in parsed if phone not in holders]
    with transaction.atomic():
        for _number, phone in parsed:
            if phone in holders:
                store(brand, holders[phone], phone)
    return Imported(len(parsed) - len(unmatched), len(unmatched), unmatched)
