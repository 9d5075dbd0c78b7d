"""Secrets stored encrypted at rest (a scoring endpoint's HMAC secret, a connector's token):
:func:`seal` before saving, :func:`unseal` when the secret is needed, never shown back.

The project has no encryption dependency, so this uses the standard library only, in an
encrypt-then-MAC construction:

- two keys derived from ``TAGPORTAL_SECRETS_KEY`` (default: ``SECRET_KEY``) with
  HMAC-SHA256 under distinct labels, one to encrypt and one to authenticate;
- a random 16-byte nonce per sealed value; the key stream is HMAC-SHA256(encryption key,
  nonce ‖ block counter) — HMAC as a pseudo-random function in counter mode — XOR-ed
  with the plain text;
- a tag HMAC-SHA256(authentication key, version ‖ nonce ‖ cipher text), checked in
  constant time before anything is decrypted.

A sealed value reads ``v1:`` and the URL-safe base64 of nonce ‖ cipher text ‖ tag. The
version prefix lets a later scheme (e.g. ``cryptography``'s Fernet, once the project
depends on it) read and re-seal old values. Changing the key makes every sealed value
unreadable (:class:`SealError`): the secrets must then be set again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from django.conf import settings

VERSION = b"v1"
NONCE_BYTES = 16
TAG_BYTES = 32
#: The longest secret sealed (a guard; scoring secrets are far shorter).
MAX_PLAIN_BYTES = 4096


class SealError(ValueError):
    """A sealed value that cannot be read: damaged, of an unknown version, or sealed under
    another key."""


def _keys() -> tuple[bytes, bytes]:
    master = str(getattr(settings, "TAGPORTAL_SECRETS_KEY", "") or settings.SECRET_KEY).encode()
    encrypt = hmac.new(master, b"tagportal.sealed.encrypt", hashlib.sha256).digest()
    authenticate = hmac.new(master, b"tagportal.sealed.authenticate", hashlib.sha256).digest()
    return encrypt, authenticate


def _stream(key: bytes, nonce: bytes, length: int) -> bytes:
    blocks = []
    for counter in range((length + 31) // 32):
        blocks.append(hmac.new(key, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest())
    return b"".join(blocks)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def seal(plain: str) -> str:
    """``plain`` encrypted and authenticated (see the module docstring)."""
    data = plain.encode()
    if len(data) > MAX_PLAIN_BYTES:
        raise ValueError("the secret is too long to seal")
    encrypt, authenticate = _keys()
    nonce = os.urandom(NONCE_BYTES)
    cipher = _xor(data, _stream(encrypt, nonce, len(data)))
    tag = hmac.new(authenticate, VERSION + nonce + cipher, hashlib.sha256).digest()
    return VERSION.decode() + ":" + base64.urlsafe_b64encode(nonce + cipher + tag).decode()


def unseal(sealed: str) -> str:
    """The plain text of a value :func:`seal` gave, or :class:`SealError`."""
    version, _sep, body = (sealed or "").partition(":")
    if version.encode() != VERSION or not body:
        raise SealError("not a sealed value of a known version")
    try:
        raw = base64.urlsafe_b64decode(body.encode())
    except (ValueError, TypeError) as exc:
        raise SealError("a damaged sealed value") from exc
    if len(raw) < NONCE_BYTES + TAG_BYTES:
        raise SealError("a damaged sealed value")
    nonce, cipher, tag = raw[:NONCE_BYTES], raw[NONCE_BYTES:-TAG_BYTES], raw[-TAG_BYTES:]
    encrypt, authenticate = _keys()
    expected = hmac.new(authenticate, VERSION + nonce + cipher, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, tag):
        raise SealError("the sealed value was damaged or sealed under another key")
    try:
        return _xor(cipher, _stream(encrypt, nonce, len(cipher))).decode()
    except UnicodeDecodeError as exc:  # pragma: no cover - authenticated, so ours
        raise SealError("a damaged sealed value") from exc
