"""The HTTP scoring contract of a brand's own model: what TagPortal sends to a registered
URL, how it signs it, and what it expects back. :mod:`.scoring_client` speaks it; the
serializers here document it in the OpenAPI schema (the model registry's API refers to
them) and let a Python scoring service validate what it receives.

Request
=======

``POST <endpoint>`` with ``Content-Type: application/json``, one batch of people per
request (at most the registered batch size)::

    {"model": "churn_own", "batch": 0,
     "rows": [{"oneid": 1, "features": {"orders_90d": 3, "amount_90d": 420.0, "city": null}}]}

``model`` is the model's key at TagPortal, ``batch`` the batch's number in the run
(from 0), ``features`` the person's feature values by name (numbers, texts, booleans or
``null`` for a missing value; the same names in every row of a run).

Response
========

``200`` with ``{"scores": [{"oneid": 1, "score": 0.42}]}``: one finite number per
person of the batch, in any order. An entry for a OneID that was not asked for, a
repeated OneID or a score that is not a finite number is ignored and reported; a person
of the batch left without a score is reported as unscored. Any other answer fails the
batch (see :func:`tagportal.predictive.scoring_client.score_over_http` for retries).

Signature
=========

Every request carries two headers:

- ``X-TagPortal-Timestamp``: the moment it was signed, in whole Unix seconds;
- ``X-TagPortal-Signature``: ``sha256=`` and the lowercase hex
  ``HMAC-SHA256(secret, timestamp + "." + body)`` over the raw bytes of the body, with
  the secret shared when the endpoint was registered.

The service recomputes the HMAC over the bytes it received (before parsing them),
compares it in constant time, and refuses the request with ``401`` when it differs or
when the timestamp is more than :data:`TOLERANCE_SECONDS` away from its clock (a replay
of a captured request is refused once it is older than that; a service that wants no
replay at all within the window also remembers the signatures it accepted for that
long). Retries of a batch resend the same body, timestamp and signature, so all the
retries of a batch must happen within the window (the client's backoff is far shorter).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from tagportal.core import signing

TIMESTAMP_HEADER, SIGNATURE_HEADER = signing.TIMESTAMP_HEADER, signing.SIGNATURE_HEADER
SIGNATURE_PREFIX = signing.PREFIX
#: How far (seconds) a request's timestamp may be from the service's clock.
TOLERANCE_SECONDS = signing.WINDOW
signature = signing.signature
signed_headers = signing.signed_headers


def verify(
    secret: str | bytes,
    timestamp: str | None,
    given: str | None,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """Whether a request's signature is right and its timestamp fresh (for a Python service)."""
    return signing.refusal(secret, timestamp, given, body, now=now, window=tolerance) is None


class ScoringRowSerializer(serializers.Serializer):
    oneid = serializers.IntegerField(min_value=1, help_text=_("The person's OneID."))
    features = serializers.DictField(
        child=serializers.JSONField(allow_null=True),
        help_text=_("Feature values by name: numbers, texts, booleans, or null when missing."),
    )


class ScoringRequestSerializer(serializers.Serializer):
    """The body TagPortal posts to a scoring endpoint."""

    model = serializers.CharField(max_length=100, help_text=_("The model's key at TagPortal."))
    batch = serializers.IntegerField(min_value=0, help_text=_("The batch's number in the run, from 0."))
    rows = ScoringRowSerializer(many=True, help_text=_("The people of the batch and their features."))


class ScoreSerializer(serializers.Serializer):
    oneid = serializers.IntegerField(min_value=1, help_text=_("The person's OneID."))
    score = serializers.FloatField(help_text=_("The model's score: a finite number."))


class ScoringResponseSerializer(serializers.Serializer):
    """What a scoring endpoint answers (status 200)."""

    scores = ScoreSerializer(many=True, help_text=_("One score per person of the batch."))
