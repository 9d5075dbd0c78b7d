"""The 触达 (channels) section of the audience page (:data:`tagportal.audiences.signals.DETAIL_SECTIONS`):
the audience's recent sends and the links to send to it now (and to sync it to a
channel's tags, when that page exists)."""

from __future__ import annotations

from django.db.models import Count
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from tagportal.core.days import beijing_text

from . import sends
from .models import Send

RECENT = 5


def audience_section(request, audience) -> dict | None:
    """The section for ``audience``, or ``None`` for a user who neither sees sends nor may send."""
    user = request.user
    sees = user.has_perm("activation.view_send")
    may_send = sends.may_send(user, audience)
    if not sees and not may_send:
        return None
    rows = []
    if sees:
        recent = (
            Send.objects.restrict(user, "view")
            .filter(audience=audience)
            .select_related("account")
            .annotate(n=Count("deliveries"))
            .order_by("-created", "-pk")[:RECENT]
        )
        for send in recent:
            rows.append(
                _("#%(id)s · %(at)s (Beijing) · %(account)s · %(n)s deliveries")
                % {
                    "id": send.pk,
                    "at": beijing_text(send.created),
                    "account": send.account.name,
                    "n": send.n,
                }
            )
    links = []
    if may_send:
        links.append((_("Send now"), reverse("activation:send", args=[audience.pk])))
        try:
            links.append((_("Sync to a channel's tags"), reverse("activation:sync", args=[audience.pk])))
        except NoReverseMatch:
            pass
    if sees:
        links.append((_("Deliveries"), reverse("activation:deliveries")))
    return {
        "id": "activation",
        "title": _("Channels"),
        "text": "" if rows else _("No message has been sent to this audience yet."),
        "rows": rows,
        "links": links,
    }
