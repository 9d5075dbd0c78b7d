"""Logging in: the API token endpoint and the answer to too many failed logins.

django-axes counts failed logins per username and client address (see the ``AXES_*``
settings). Both ways in go through ``django.contrib.auth.authenticate`` with the
request: the admin's login form, and :class:`ObtainTokenView` (DRF's own token view
hands ``authenticate`` its wrapped request, on which axes' lockout flag would be lost).
"""

from __future__ import annotations

import math

from django.conf import settings
from django.contrib.auth import authenticate, user_logged_in
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

#: django-axes ships no Chinese: its admin pages (login attempts, access logs) and
#: messages read these, translated in the portal's catalog.
AXES_STRINGS = (
    gettext_noop("User Agent"),
    gettext_noop("IP Address"),
    gettext_noop("HTTP Accept"),
    gettext_noop("Path"),
    gettext_noop("Attempt Time"),
    gettext_noop("Access lock out"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("GET Data"),
    gettext_noop("POST Data"),
    gettext_noop("Failed Logins"),
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("Logout Time"),
    gettext_noop("Session key hash (sha256)"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
    gettext_noop("Locked Out"),
    gettext_noop("Form Data"),
    gettext_noop("Meta Data"),
    gettext_noop("Clean up expired attempts"),
    gettext_noop("Not set"),
    gettext_noop("Attempt Remaining"),
    gettext_noop("Expires At"),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
    gettext_noop("The time when access attempt expires and is no longer valid."),
    gettext_noop("Account locked: too many login attempts. Please try again later."),
    gettext_noop("Account locked: too many login attempts. Contact an admin to unlock your account."),
)


def client_ip(request: HttpRequest) -> str:
    """The client's address as the API throttles see it: the connection's address, or
    with ``TRUSTED_PROXY_COUNT`` proxies in front the address they forwarded."""
    return BaseThrottle().get_ident(request)


def _cool_off_seconds() -> int:
    return math.ceil(settings.AXES_COOLOFF_TIME.total_seconds()) if settings.AXES_COOLOFF_TIME else 0


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """What a locked-out login gets (axes' ``AXES_LOCKOUT_CALLABLE``): 429 with a
    ``Retry-After`` header; JSON ``{"detail": …}`` on the API, a page elsewhere."""
    seconds = _cool_off_seconds()
    minutes = max(1, math.ceil(seconds / 60)) if seconds else 0
    if minutes:
        message = _(
            "Too many failed logins for this account from your address. Try again in %(minutes)s minutes."
        ) % {"minutes": minutes}
    else:
        message = _(
            "Too many failed logins for this account from your address. Ask an administrator to unlock it."
        )
    status = settings.AXES_HTTP_RESPONSE_CODE
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": message, "retry_after": seconds or None}, status=status)
    else:
        response = render(
            request,
            "registration/locked_out.html",
            {"title": _("Login locked"), "message": message, "site_header": _("TagPortal")},
            status=status,
        )
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


class TokenRequestSerializer(AuthTokenSerializer):
    """DRF's username and password, checked by ``authenticate`` with Django's request,
    so that axes counts the failure and refuses a locked-out pair. A success is a login
    (``user_logged_in``: the last login time, axes' access log and its count reset)."""

    def validate(self, attrs):
        request = self.context["request"]
        http_request = getattr(request, "_request", request)
        user = authenticate(http_request, username=attrs.get("username"), password=attrs.get("password"))
        if user is None:
            raise serializers.ValidationError(
                gettext_lazy("Unable to log in with provided credentials."), code="authorization"
            )
        user_logged_in.send(sender=user.__class__, request=http_request, user=user)
        attrs["user"] = user
        return attrs


class ObtainTokenView(ObtainAuthToken):
    """``POST username, password`` → ``{"token": …}``. 400 for wrong credentials; 429
    after too many failures for that username from the caller's address."""

    serializer_class = TokenRequestSerializer
    # DRF's token view has no throttles; this one has the API's (anonymous rate).
    throttle_classes = api_settings.DEFAULT_THROTTLE_CLASSES


obtain_token = ObtainTokenView.as_view()
