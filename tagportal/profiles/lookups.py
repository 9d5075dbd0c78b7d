"""Looking people up by a raw identity value (a phone number, an openid …).

Whoever may ask "who holds this value?" can test guesses, and a masked phone number
(``138******78``) leaves a million completions to test. So asking is a permission of
its own, ``profiles.lookup_identity``, held by API clients that already hold the values
they send (the ``api_client`` role, e.g. a CRM sync) and by admins; operators and
analysts, who read profiles with their identities masked, do not hold it.

Every endpoint that takes a raw identity value and answers whether or who holds it
(``/api/profiles/customers/lookup/``, ``/api/engine/profiles/lookup/``, the identities
form of ``/api/engine/profiles/batch/`` and the identifier search of the customer admin
page) goes through this module:

- :func:`check` refuses a caller without the permission, before anything is looked up,
  so the answer is the same whether the values exist or not;
- :class:`LookupThrottle` limits each user to the ``lookup`` rate (settings
  ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["lookup"]``, env ``THROTTLE_LOOKUP``),
  counting calls: a batch of up to 1,000 values is one call;
- :func:`record` writes one :class:`~.models.IdentityLookup` row per call: who, where,
  which brand, how many values, how many were found, refused or not. The values are
  never stored, not even hashed (a keyed hash of a phone number is as good as the
  number to whoever holds the key).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.utils.translation import gettext_lazy as _
from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle

from .choices import LookupEndpoint
from .models import IdentityLookup

LOOKUP_PERMISSION = "profiles.lookup_identity"
#: The throttle scope of lookups (a rate per user in the REST framework settings).
LOOKUP_SCOPE = "lookup"

REFUSED = _(
    "You may not look people up by an identity value: that needs the permission "
    "“Can look up people by identity value”, held by API clients that already know the values."
)


def may_look_up(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(LOOKUP_PERMISSION))


def record(
    user, endpoint: LookupEndpoint, candidates: int, found: int = 0, brand=None, refused: bool = False
) -> IdentityLookup:
    """The audit row of one lookup call (never the values looked up)."""
    return IdentityLookup.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        endpoint=endpoint,
        brand=brand,
        candidates=candidates,
        found=min(found, candidates),
        refused=refused,
    )


def check(user, endpoint: LookupEndpoint, candidates: int, brand=None) -> None:
    """Refuse (``PermissionDenied``, answered 403) a caller without the lookup permission,
    recording the refused call."""
    if not may_look_up(user):
        record(user, endpoint, candidates, brand=brand, refused=True)
        raise PermissionDenied(str(REFUSED))


class LookupThrottle(UserRateThrottle):
    """Lookups per user (per address for anonymous callers) at the ``lookup`` rate.

    The rate is read from the settings when the throttle is made, so a changed setting
    applies at once (DRF's own throttles read it once, at import)."""

    scope = LOOKUP_SCOPE

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
