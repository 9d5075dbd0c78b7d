"""Where a brand's scoring endpoint may point.

TagPortal posts to a URL a user registered, from inside the brand's network: without a
check that is a way to reach the intranet or a cloud metadata service
(``169.254.169.254``) on the user's behalf. :func:`check_url` refuses:

- anything but ``http`` / ``https``, a URL without a host, with a user or password in it
  (they would be shown back with the URL), or a fragment;
- a host that does not resolve, or that resolves to **any** address that is not public
  (private, loopback, link-local, shared, reserved, multicast or unspecified, IPv4 or
  IPv6, an IPv4 address mapped into IPv6 included) — unless the setting
  ``TAGPORTAL_SCORING_ALLOW_PRIVATE`` is on (for a scoring service inside the brand's
  own network, and for the tests' local fake service).

It is called when a model is saved and again right before each run and connection
test (a name may resolve elsewhere later). The check and the request resolve the name
separately, so a name whose answers change within those milliseconds is not caught;
private deployments that need that guarantee put an egress proxy in front.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

MAX_URL_LENGTH = 500


class EndpointRefused(ValueError):
    """A scoring URL TagPortal will not post to; the message says why."""


def check_syntax(url: str) -> None:
    """The URL's shape (no DNS): http(s), a host, no credentials, no fragment."""
    if not isinstance(url, str) or not url.strip():
        raise EndpointRefused(_("The scoring URL is required."))
    if len(url) > MAX_URL_LENGTH:
        raise EndpointRefused(_("The scoring URL is longer than %(n)d characters.") % {"n": MAX_URL_LENGTH})
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise EndpointRefused(_("The scoring URL is not a valid URL.")) from exc
    if parts.scheme not in ("http", "https"):
        raise EndpointRefused(_("The scoring URL must start with http:// or https://."))
    if not parts.hostname:
        raise EndpointRefused(_("The scoring URL has no host."))
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused(
            _("The scoring URL must not hold a user name or password; the requests are signed instead.")
        )
    if parts.fragment:
        raise EndpointRefused(_("The scoring URL must not have a fragment (#…)."))


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_url(url: str) -> None:
    """Refuse (:class:`EndpointRefused`) a URL TagPortal must not post to (module docstring)."""
    check_syntax(url)
    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise EndpointRefused(
            _("The host “%(host)s” of the scoring URL cannot be resolved.") % {"host": host}
        ) from exc
    if settings.TAGPORTAL_SCORING_ALLOW_PRIVATE:
        return
    for _family, _type, _proto, _name, sockaddr in answers:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if not _public(address):
            raise EndpointRefused(
                _(
                    "The scoring URL resolves to %(address)s, an address that is not public "
                    "(private, loopback, link-local or reserved): TagPortal does not post there."
                )
                % {"address": address}
            )
