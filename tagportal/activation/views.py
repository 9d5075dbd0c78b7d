"""The activation pages: the channel accounts of the brands the user sees (with a
connection test), the deliveries (filters, a status funnel), the dead letters (retry),
and sending a message to an audience now (form → preview with counts → confirm).

Every page needs a login; objects come from ``restrict``, so another business line's
audience, account or delivery answers 404; an action the user's role lacks answers 403.
Recipients are shown masked, never a phone (an SMS delivery only holds its hash).
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tagportal.audiences.models import Audience
from tagportal.core.days import beijing_text
from tagportal.core.filters import id_or_none
from tagportal.core.permissions import may

from . import deliveries, sends, services
from .choices import ChannelKind
from .models import ChannelAccount, Delivery, DeliveryState

PAGE_SIZE = 50
#: Key/value rows offered on the send form.
PAIRS = 6
#: The funnel's stages: everything made, then the deliveries that reached at least each
#: state (a read message was delivered and sent). Failed and dead leave the funnel; they
#: are counted in the table beside it.
REACHED = {
    DeliveryState.SENT: (
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
        DeliveryState.READ,
        DeliveryState.CLICKED,
    ),
    DeliveryState.DELIVERED: (DeliveryState.DELIVERED, DeliveryState.READ, DeliveryState.CLICKED),
    DeliveryState.READ: (DeliveryState.READ, DeliveryState.CLICKED),
    DeliveryState.CLICKED: (DeliveryState.CLICKED,),
}
FUNNEL_COLOR = "#2f6f9f"


def _render(request, template: str, context: dict, status: int = 200) -> TemplateResponse:
    context = {**admin.site.each_context(request), **context}
    return TemplateResponse(request, template, context, status=status)


def mask(recipient: str) -> str:
    """A recipient as a few characters of each end (a hash or an id; never a phone)."""
    text = str(recipient or "")
    if len(text) <= 4:
        return "*" * len(text)
    keep = 3 if len(text) > 8 else 1
    return f"{text[:keep]}****{text[-2:]}"


def sync_url(audience) -> str | None:
    try:
        return reverse("activation:sync", args=[audience.pk])
    except NoReverseMatch:
        return None


# ---------------------------------------------------------------------------
# Channel accounts


@login_required
@require_GET
def accounts(request):
    rows = (
        ChannelAccount.objects.restrict(request.user, "view")
        .select_related("brand")
        .order_by("brand__code", "kind", "name", "pk")
    )
    may_change = request.user.has_perm("activation.change_channelaccount")
    items = [
        {
            "account": a,
            "admin_url": reverse("admin:activation_channelaccount_change", args=[a.pk]) if may_change else "",
            "may_test": may_change,
        }
        for a in rows
    ]
    return _render(request, "activation/accounts.html", {"title": _("Channel accounts"), "items": items})


@login_required
@require_POST
def test_account(request, pk: int):
    account = get_object_or_404(ChannelAccount.objects.restrict(request.user, "view"), pk=pk)
    if not may(request.user, account, "change"):
        raise PermissionDenied
    check = services.test_connection(account)
    if check.ok:
        messages.success(request, _("“%(name)s”: the platform answered.") % {"name": account.name})
    else:
        messages.error(
            request,
            _("“%(name)s”: the platform refused (%(code)s): %(message)s")
            % {"name": account.name, "code": check.code, "message": check.message},
        )
    return redirect("activation:accounts")


# ---------------------------------------------------------------------------
# Deliveries


def funnel_stages(counts: dict[str, int]) -> list[tuple[str, int]]:
    """``[(label, deliveries)]``: all of them, then those that reached each state."""
    labels = dict(DeliveryState.choices)
    stages = [(str(_("Made")), sum(counts.values()))]
    for state, states in REACHED.items():
        stages.append((str(labels[state]), sum(counts.get(s, 0) for s in states)))
    return stages


def funnel_figure(counts: dict[str, int]) -> go.Figure:
    stages = funnel_stages(counts)
    figure = go.Figure(
        go.Funnel(
            y=[label for label, _n in stages],
            x=[n for _label, n in stages],
            textinfo="value+percent initial",
            marker={"color": FUNNEL_COLOR},
            hovertemplate="%{y}: %{x} (%{percentInitial:.1%})<extra></extra>",
        )
    )
    figure.update_layout(height=300, margin={"l": 80, "r": 20, "t": 10, "b": 20})
    return figure


def _delivery_rows(page) -> list[dict]:
    return [
        {
            "delivery": d,
            "recipient": mask(d.recipient),
            "kind": d.send.get_kind_display(),
            "created": beijing_text(d.created, empty="—"),
            "sent_at": beijing_text(d.sent_at, empty="—"),
            "next_attempt_at": beijing_text(d.next_attempt_at, empty="—"),
        }
        for d in page
    ]


@login_required
@require_GET
def delivery_list(request):
    visible = Delivery.objects.restrict(request.user, "view")
    send_id = id_or_none(request.GET.get("send", ""))
    kind = request.GET.get("kind", "")
    state = request.GET.get("state", "")
    scoped = visible
    if send_id is not None:
        scoped = scoped.filter(send_id=send_id)
    if kind in ChannelKind.values:
        scoped = scoped.filter(send__kind=kind)
    counts = dict(scoped.order_by().values_list("state").annotate(n=Count("pk")).values_list("state", "n"))
    shown = scoped.filter(state=state) if state in DeliveryState.values else scoped
    page = Paginator(shown.select_related("send").order_by("-pk"), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    query = {k: v for k, v in (("send", send_id or ""), ("kind", kind), ("state", state)) if v}
    context = {
        "title": _("Deliveries"),
        "rows": _delivery_rows(page),
        "page": page,
        "query": urlencode(query),
        "send_id": send_id or "",
        "kind": kind,
        "state": state,
        "kinds": ChannelKind.choices,
        "states": DeliveryState.choices,
        "counts": [(value, label, counts.get(value, 0)) for value, label in DeliveryState.choices],
        "total": sum(counts.values()),
        "figures": {"funnel": json.loads(funnel_figure(counts).to_json())},
    }
    return _render(request, "activation/deliveries.html", context)


def _may_retry(user) -> bool:
    return user.has_perm("activation.change_delivery")


@login_required
@require_GET
def dead_letters(request):
    dead = (
        Delivery.objects.restrict(request.user, "view")
        .filter(state=DeliveryState.DEAD)
        .select_related("send")
        .order_by("-pk")
    )
    page = Paginator(dead, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "title": _("Dead letters"),
        "rows": _delivery_rows(page),
        "page": page,
        "may_retry": _may_retry(request.user),
    }
    return _render(request, "activation/dead_letters.html", context)


@login_required
@require_POST
def retry(request, pk: int):
    delivery = get_object_or_404(Delivery.objects.restrict(request.user, "view"), pk=pk)
    if not _may_retry(request.user) or not may(request.user, delivery, "change"):
        raise PermissionDenied
    try:
        deliveries.retry(delivery)
    except deliveries.NotRetryable as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, _("Delivery %(key)s queued again.") % {"key": delivery.idempotency_key})
    return redirect("activation:dead_letters")


# ---------------------------------------------------------------------------
# Sending to an audience


#: The channel kinds each field of the send form is for (the page shows a field only
#: for its kinds once an account is chosen).
FIELD_KINDS = {
    "template": ("wechat_mp", "miniprogram", "sms_aliyun", "sms_tencent"),
    "page": ("miniprogram",),
    "url": ("wechat_mp",),
    "text": ("wecom", "webhook"),
    "sender": ("wecom",),
    "pairs": ("wechat_mp", "miniprogram", "sms_aliyun", "sms_tencent", "webhook"),
}


class SendForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=ChannelAccount.objects.none(), label=gettext_lazy("Channel account")
    )
    template = forms.CharField(
        label=gettext_lazy("Template ID / code"),
        required=False,
        max_length=200,
        help_text=gettext_lazy("公众号, 小程序: the template ID; SMS: the template code (Tencent: its ID)."),
    )
    page = forms.CharField(
        label=gettext_lazy("Mini-program page"),
        required=False,
        max_length=500,
        help_text=gettext_lazy("小程序 only."),
    )
    url = forms.CharField(
        label=gettext_lazy("Link URL"),
        required=False,
        max_length=500,
        help_text=gettext_lazy("公众号 only, optional."),
    )
    text = forms.CharField(
        label=gettext_lazy("Message text"),
        required=False,
        max_length=sends.MAX_TEXT,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("WeCom and webhook."),
    )
    sender = forms.CharField(
        label=gettext_lazy("Sender userid"),
        required=False,
        max_length=100,
        help_text=gettext_lazy("WeCom only."),
    )

    def __init__(self, *args, user=None, audience=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.audience = audience
        self.fields["account"].queryset = sends.accounts_for(user, audience)
        for i in range(1, PAIRS + 1):
            self.fields[f"key_{i}"] = forms.CharField(
                label=_("Name %(n)s") % {"n": i}, required=False, max_length=64
            )
            self.fields[f"value_{i}"] = forms.CharField(
                label=_("Value %(n)s") % {"n": i}, required=False, max_length=sends.MAX_TEXT
            )

    def pairs(self):
        return [(self[f"key_{i}"], self[f"value_{i}"]) for i in range(1, PAIRS + 1)]

    def rows(self):
        """``(bound field, "kind kind …")`` of the content fields."""
        return [
            (self[name], " ".join(FIELD_KINDS[name]))
            for name in ("template", "page", "url", "text", "sender")
        ]

    def account_kinds(self) -> dict[str, str]:
        return {str(pk): kind for pk, kind in self.fields["account"].queryset.values_list("pk", "kind")}

    def content(self) -> dict:
        """The content for the chosen account's kind (:data:`.sends.CONTENT`)."""
        data = self.cleaned_data
        kind = data["account"].kind
        pairs = {}
        for i in range(1, PAIRS + 1):
            key, value = (data.get(f"key_{i}") or "").strip(), data.get(f"value_{i}") or ""
            if key:
                pairs[key] = value
            elif value:
                pairs[str(i)] = value
        required, optional, mapping, listing = sends.CONTENT[kind]
        content = {}
        for name in (*required, *optional):
            source = "template" if name in ("template_id", "template_code") else name
            content[name] = data.get(source, "")
        if mapping and pairs:
            content[mapping] = pairs
        if listing:
            content[listing] = list(pairs.values())
        return content

    def clean(self):
        data = super().clean()
        if self.errors or "account" not in data:
            return data
        try:
            self.cleaned_content = sends.check_content(data["account"].kind, self.content())
            sends.check_variables(self.audience, self.cleaned_content)
        except ValidationError as exc:
            messages_ = [m for ms in getattr(exc, "message_dict", {"": exc.messages}).values() for m in ms]
            raise ValidationError(messages_) from None
        return data


@login_required
@require_http_methods(["GET", "POST"])
def send_to_audience(request, pk: int):
    audience = get_object_or_404(
        Audience.objects.restrict(request.user, "view").select_related("brand"), pk=pk
    )
    if not sends.may_send(request.user, audience):
        raise PermissionDenied
    form = SendForm(request.POST or None, user=request.user, audience=audience)
    context = {
        "title": _("Send now: %(name)s") % {"name": audience.name},
        "audience": audience,
        "form": form,
        "pair_kinds": " ".join(FIELD_KINDS["pairs"]),
        "account_kinds": form.account_kinds(),
        "variable_help": _(
            "Write %(example)s in a text to fill in each person's current value of that tag "
            "(an empty text when they have none)."
        )
        % {"example": "{{tag:code}}"},
    }
    if request.method == "POST" and form.is_valid():
        account = form.cleaned_data["account"]
        if "confirm" in request.POST:
            send, counted = sends.send_to_audience(request.user, audience, account, form.cleaned_content)
            messages.success(
                request,
                _("Send #%(id)s queued: %(n)s messages.") % {"id": send.pk, "n": counted.will_send},
            )
            return redirect(f"{reverse('activation:deliveries')}?send={send.pk}")
        context["preview"] = sends.preview(request.user, audience, account, form.cleaned_content)
        context["content_json"] = json.dumps(form.cleaned_content, ensure_ascii=False, indent=2)
        context["reasons"] = [
            (str(_REASON_LABELS.get(code, code)), n) for code, n in sorted(context["preview"].refused.items())
        ]
    return _render(request, "activation/send.html", context)


_REASON_LABELS = {
    "suppressed": gettext_lazy("on the suppression list"),
    "opted_out": gettext_lazy("opted out"),
    "no_consent": gettext_lazy("no opt-in"),
    "no_vault": gettext_lazy("no contact vault"),
    "no_contact": gettext_lazy("no number in the vault"),
}
