"""Secrets kept at rest encrypted: channel credentials, scoring-endpoint keys.

Encryption is Fernet (AES-128-CBC with HMAC-SHA256, from ``cryptography``) through a
``MultiFernet``: the first key of ``TAGPORTAL_SECRET_KEYS`` encrypts, every key decrypts,
so keys rotate by putting a new one first (and :func:`rotate` re-encrypts stored values).
Without ``TAGPORTAL_SECRET_KEYS`` the key is derived from ``SECRET_KEY`` (HKDF-SHA256),
and the ``SECRET_KEY_FALLBACKS`` give decrypt-only keys; production sets its own keys so
that changing ``SECRET_KEY`` does not make stored secrets unreadable.

:class:`EncryptedTextField` stores the ciphertext and gives the plain text in Python. Its
form field never shows the stored value back (a password input) and a blank submission
keeps the stored secret. APIs declare such fields write-only and answer whether one is
set (``…_set``), never the value.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django import forms
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.utils.translation import gettext_lazy as _

#: Marks a stored value as ciphertext of this module (a version for later formats).
PREFIX = "enc1:"


class SecretUnreadable(ValueError):
    """A stored secret no configured key decrypts (the keys changed without rotation)."""


def _derived(secret: str) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tagportal-secrets", info=b"fernet").derive(
        secret.encode()
    )
    return base64.urlsafe_b64encode(key)


def configured_keys(setting: str) -> tuple[bytes, ...]:
    """The Fernet keys a setting names (a comma-separated text or a list), first first."""
    configured = getattr(settings, setting, None) or []
    if isinstance(configured, str):
        configured = [k for k in (part.strip() for part in configured.split(",")) if k]
    return tuple(k.encode() if isinstance(k, str) else k for k in configured)


@lru_cache(maxsize=8)
def multi_fernet(keys: tuple[bytes, ...], setting: str = "TAGPORTAL_SECRET_KEYS") -> MultiFernet:
    """The MultiFernet of ``keys`` (the first encrypts); bad keys are a configuration error
    naming ``setting``."""
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"{setting} must be Fernet keys (32 url-safe base64-encoded bytes), comma-separated."
        ) from exc


def _keys() -> tuple[bytes, ...]:
    configured = configured_keys("TAGPORTAL_SECRET_KEYS")
    if configured:
        return configured
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", None) or []
    return tuple(_derived(s) for s in [settings.SECRET_KEY, *fallbacks])


def _fernet() -> MultiFernet:
    return multi_fernet(_keys())


def generate_key() -> str:
    """A new key for ``TAGPORTAL_SECRET_KEYS``."""
    return Fernet.generate_key().decode()


def encrypt(text: str) -> str:
    """The stored form of ``text`` ("" stays "")."""
    if not text:
        return ""
    return PREFIX + _fernet().encrypt(text.encode()).decode()


def decrypt(stored: str) -> str:
    """The plain text of a stored value (``SecretUnreadable`` when no key decrypts it)."""
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise SecretUnreadable(_("The stored secret is not in an encrypted form."))
    try:
        return _fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(_("No configured key decrypts the stored secret.")) from exc


def rotate(stored: str) -> str:
    """``stored`` encrypted again with the first key (unchanged when empty)."""
    if not stored:
        return ""
    if not stored.startswith(PREFIX):
        raise SecretUnreadable(_("The stored secret is not in an encrypted form."))
    try:
        return PREFIX + _fernet().rotate(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable(_("No configured key decrypts the stored secret.")) from exc


class SecretFormField(forms.CharField):
    """A password input that never shows the stored value; blank keeps it."""

    def __init__(self, *args, **kwargs):
        kwargs.pop("widget", None)
        kwargs["widget"] = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        kwargs["required"] = False
        kwargs.setdefault("strip", False)
        kwargs.setdefault(
            "help_text", _("Stored encrypted and never shown again; leave blank to keep the current one.")
        )
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        return ""


class EncryptedTextField(models.TextField):
    """Text stored encrypted (:func:`encrypt`); the attribute holds the plain text."""

    description = _("Encrypted text")

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("blank", True)
        kwargs.setdefault("default", "")
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return value
        try:
            return decrypt(value)
        except SecretUnreadable:
            # An unreadable secret reads as unset: the connection test says so and a
            # steward enters it again; the ciphertext stays until then.
            return ""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return value
        return encrypt(value)

    def formfield(self, **kwargs):
        kwargs = {"form_class": SecretFormField, **kwargs}
        return super().formfield(**kwargs)

    def save_form_data(self, instance, data):
        if data:  # blank: keep the stored secret
            super().save_form_data(instance, data)

    def value_to_string(self, obj):
        # Serialisation (dumpdata, history) carries the ciphertext, never the plain text.
        return encrypt(self.value_from_object(obj))
