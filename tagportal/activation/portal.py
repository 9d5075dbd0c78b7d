"""The 触达 (channels) section of the audience page (:data:`tagportal.audiences.signals.DETAIL_SECTIONS`):
the audience's recent sends and channel-tag syncs, and the links to send to it now and
to sync it to a channel's customer tags."""

from __future__ import annotations

from django.db.models import Count
from django.urls import reverse
from django.utils.translation import gettext as _

from tagportal.core.days import beijing_text

from . import sends
from .models import AudienceSync, Send

RECENT = 5


def audience_section(request, audience) -> dict | None:
    """The section for ``audience``, or ``None`` for a user who sees neither sends nor
    syncs and may not send."""
    user = request.user
    sees = user.has_perm("activation.view_send")
    sees_syncs = user.has_perm("activation.view_audiencesync")
    may_send = sends.may_send(user, audience)
    if not sees and not may_send and not sees_syncs:
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
    sent = len(rows)
    links = []
    if may_send:
        links.append((_("Send now"), reverse("activation:send", args=[audience.pk])))
    if sees_syncs:
        syncs = AudienceSync.objects.restrict(user, "view").filter(audience=audience).count()
        rows.append(_("Synced to %(n)s customer tag(s) of the brand's channels.") % {"n": syncs})
        links.append(
            (_("Sync to a channel's tags"), reverse("activation:audience-syncs", args=[audience.pk]))
        )
    if sees:
        links.append((_("Deliveries"), reverse("activation:deliveries")))
    return {
        "id": "activation",
        "title": _("Channels"),
        "text": _("No message has been sent to this audience yet.") if sees and not sent else "",
        "rows": rows,
        "links": links,
    }
