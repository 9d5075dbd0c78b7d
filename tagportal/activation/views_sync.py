"""The audience's channel syncs page (``/activation/audiences/<pk>/sync/``): the syncs of
the audience with their state, and a form to sync it to a customer tag of one of its
brand's WeCom, 公众号, Youzan or Weimob accounts. Login required; an audience the user
may not view answers 404; the form is offered to those who may change it, and a refused
sync is a form error, never a server error. The audience page links here
(:func:`audience_section`)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from tagportal.audiences.models import Audience
from tagportal.core.permissions import may

from . import syncs
from .models import SYNC_KINDS, AudienceSync, ChannelAccount


class SyncForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=ChannelAccount.objects.none(), label=gettext_lazy("channel account")
    )
    tag_name = forms.CharField(label=gettext_lazy("platform tag name"), max_length=100)
    tag_group = forms.CharField(
        label=gettext_lazy("platform tag group"),
        max_length=30,
        required=False,
        help_text=gettext_lazy("WeCom only: the tag group's name."),
    )
    userid = forms.CharField(
        label=gettext_lazy("WeCom member userid"),
        max_length=64,
        required=False,
        help_text=gettext_lazy("WeCom only: the member who tags the customers."),
    )
    tag_id = forms.CharField(
        label=gettext_lazy("Weimob tag id"),
        max_length=64,
        required=False,
        help_text=gettext_lazy("Weimob only: the id of an existing CDP tag."),
    )

    def __init__(self, *args, accounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts

    def options(self) -> dict:
        kind = self.cleaned_data["account"].kind
        wanted = syncs.SETTINGS.get(kind, ())
        return {name: self.cleaned_data[name] for name in wanted if self.cleaned_data.get(name)}


def _accounts(user, audience: Audience):
    return ChannelAccount.objects.restrict(user, "view").filter(
        brand_id=audience.brand_id, kind__in=SYNC_KINDS, is_active=True
    )


@login_required
@require_http_methods(["GET", "POST"])
def audience_syncs(request, pk: int):
    user = request.user
    audience = get_object_or_404(Audience.objects.restrict(user, "view").select_related("brand"), pk=pk)
    may_sync = may(user, audience, "change") and user.has_perm("activation.add_audiencesync")
    accounts = _accounts(user, audience)
    form = SyncForm(request.POST or None, accounts=accounts) if may_sync else None
    if request.method == "POST":
        if not may_sync:
            raise PermissionDenied
        if form.is_valid():
            try:
                syncs.create_sync(
                    user,
                    audience,
                    form.cleaned_data["account"],
                    form.cleaned_data["tag_name"],
                    tag_group=form.cleaned_data["tag_group"],
                    options=form.options(),
                )
            except (syncs.SyncRefused, PermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("The sync is created; its first run is queued."))
                return redirect(reverse("activation:audience-syncs", args=[audience.pk]))
    rows = AudienceSync.objects.restrict(user, "view").filter(audience=audience).select_related("account")
    context = {
        "title": _("Channel syncs of %(name)s") % {"name": audience.name},
        "audience": audience,
        "syncs": rows,
        "form": form,
        "no_accounts": may_sync and not accounts.exists(),
    }
    # the admin's header, user links and navigation, as on the other portal pages
    return TemplateResponse(request, "activation/sync.html", {**admin.site.each_context(request), **context})
