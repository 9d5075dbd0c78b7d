"""The journey pages, mounted at ``/journeys/`` with the namespace ``journeys``: the list,
the editor (a canvas the journey is drawn on; see ``static/journeys/editor.js``), the
journey's page (people per node, the path funnel, sends, conversions, uplift over the
holdout, variants), the review queue and a version's review page.

Every page needs a login; journeys come from ``restrict``, so another brand's journey
answers 404; a state change goes through :mod:`.lifecycle`, whose refusals are shown as
messages (a 403 for a role that may not).
"""

from __future__ import annotations

import json

import plotly.graph_objects as go
from django import forms
from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tagportal.activation.choices import ChannelKind
from tagportal.activation.models import DeliveryState
from tagportal.catalog.models import Brand
from tagportal.core.days import beijing_text
from tagportal.core.exceptions import Conflict, error_text
from tagportal.core.permissions import containers_for_add

from . import analytics, editor, lifecycle
from .choices import InstanceState, JourneyStatus, NodeType, VersionState
from .models import Journey, JourneyVersion

#: How people stand in a journey, as the journey's page says it.
OUTCOME_LABELS = {
    InstanceState.ACTIVE: gettext_lazy("moving on"),
    InstanceState.WAITING: gettext_lazy("waiting at a node"),
    InstanceState.DONE: gettext_lazy("went through"),
    InstanceState.EXITED: gettext_lazy("left early"),
    InstanceState.CONVERTED: gettext_lazy("reached the goal"),
}
SANKEY_COLORS = {"node": "#2f6f9f", "converted": "#2e7d32", "exited": "#b71c1c", "done": "#607d8b"}


def _render(request, template: str, context: dict, status: int = 200) -> TemplateResponse:
    # the portal's header is the navigation: no admin model sidebar
    context = {**admin.site.each_context(request), "is_nav_sidebar_enabled": False, **context}
    return TemplateResponse(request, template, context, status=status)


def _journey(request, pk: int) -> Journey:
    return get_object_or_404(Journey.objects.restrict(request.user, "view").select_related("brand"), pk=pk)


def _may_add(user) -> bool:
    return containers_for_add(user, Journey, Brand).exists()


# ---------------------------------------------------------------------------
# List


@login_required
@require_GET
def journey_list(request):
    journeys = (
        Journey.objects.restrict(request.user, "view")
        .select_related("brand", "live_version", "owner")
        .order_by("brand__code", "name", "pk")
    )
    status = request.GET.get("status", "")
    if status in JourneyStatus.values:
        journeys = journeys.filter(status=status)
    pending = dict(
        JourneyVersion.objects.filter(journey__in=journeys, state=VersionState.PENDING).values_list(
            "journey_id", "number"
        )
    )
    rows = [
        {
            "journey": j,
            "pending": pending.get(j.pk),
            "updated": beijing_text(j.updated),
        }
        for j in journeys
    ]
    context = {
        "title": _("Marketing journeys"),
        "rows": rows,
        "statuses": JourneyStatus.choices,
        "status": status,
        "may_add": _may_add(request.user),
        "to_review": lifecycle.review_queue(request.user).count(),
    }
    return _render(request, "journeys/list.html", context)


# ---------------------------------------------------------------------------
# Editor


class JourneyForm(forms.Form):
    brand = forms.ModelChoiceField(queryset=Brand.objects.none(), label=gettext_lazy("Brand"))
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    description = forms.CharField(
        label=gettext_lazy("Description"), required=False, widget=forms.Textarea(attrs={"rows": 1})
    )
    graph = forms.CharField(widget=forms.HiddenInput(attrs={"id": "tp-graph"}), required=False)

    def __init__(self, *args, user=None, journey=None, **kwargs):
        super().__init__(*args, **kwargs)
        if journey is None:
            self.fields["brand"].queryset = containers_for_add(user, Journey, Brand).order_by("code")
        else:
            del self.fields["brand"]

    def clean_graph(self):
        text = self.cleaned_data.get("graph") or ""
        try:
            value = json.loads(text) if text else {}
        except ValueError:
            raise ValidationError(
                _("The drawing could not be read; reload the page and try again.")
            ) from None
        if not isinstance(value, dict):
            raise ValidationError(_("The drawing could not be read; reload the page and try again."))
        return value


def _editor(request, journey: Journey | None):
    user = request.user
    if journey is None:
        if not _may_add(user):
            raise PermissionDenied
        initial = {"graph": json.dumps({"nodes": [], "edges": [], "goal": None})}
        brands = list(containers_for_add(user, Journey, Brand).order_by("code"))
        if len(brands) == 1:
            initial["brand"] = brands[0].pk
    else:
        if not lifecycle.may_edit(user, journey):
            raise PermissionDenied
        latest = lifecycle.latest_version(journey)
        initial = {
            "name": journey.name,
            "description": journey.description,
            "graph": json.dumps(latest.graph if latest else {}, ensure_ascii=False),
        }
        brands = [journey.brand]
    form = JourneyForm(request.POST or None, initial=initial, user=user, journey=journey)
    node_errors: dict[str, list[str]] = {}
    general: list[str] = []
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                if journey is None:
                    journey = lifecycle.create(
                        user, data["brand"], data["name"], data["graph"], data["description"]
                    )
                    version = lifecycle.latest_version(journey)
                else:
                    lifecycle.rename(user, journey, data["name"], data["description"])
                    version = lifecycle.new_version(user, journey, data["graph"])
            except ValidationError as exc:
                found = getattr(exc, "error_dict", {})
                graph_errors = [m for e in found.get("graph", []) for m in e.messages]
                node_errors, general = editor.errors_by_node(data["graph"], graph_errors)
                for name in ("name", "brand", "description"):
                    for e in found.get(name, []):
                        for m in e.messages:
                            form.add_error(name if name in form.fields else None, m)
                if not found:
                    general.append(error_text(exc))
                status = 400
            except Conflict as exc:
                general.append(error_text(exc))
                status = 409
            else:
                messages.success(
                    request,
                    _("Saved as version %(n)s (a draft). Submit it for review when it is ready.")
                    % {"n": version.number},
                )
                return redirect("journeys:detail", journey.pk)
        else:
            status = 400
    title = (
        _("New journey")
        if journey is None or journey.pk is None
        else _("Edit: %(name)s") % {"name": journey.name}
    )
    context = {
        "title": title,
        "journey": journey,
        "form": form,
        "general_errors": general,
        "node_errors": node_errors,
        "catalog": {
            **editor.catalog(user, brands),
            "brand": brands[0].pk if journey and journey.pk else None,
        },
        "strings": editor.strings(),
        "node_types": [(value, label) for value, label in _palette()],
    }
    return _render(request, "journeys/editor.html", context, status=status)


def _palette():
    words = editor.strings()
    return [(t, words[f"type_{t}"]) for t in NodeType.values]


@login_required
@require_http_methods(["GET", "POST"])
def journey_new(request):
    return _editor(request, None)


@login_required
@require_http_methods(["GET", "POST"])
def journey_edit(request, pk: int):
    journey = _journey(request, pk)
    return _editor(request, journey)


# ---------------------------------------------------------------------------
# The journey's page


#: How people left, drawn as the Sankey's last column (those who went through to an
#: exit node are already shown by it).
SANKEY_SINKS = (InstanceState.CONVERTED, InstanceState.EXITED)


def _node_names(graph: dict) -> dict[str, str]:
    """A short name per node id: its name on the canvas, else its type (with its id when
    two nodes would read the same)."""
    words = editor.strings()
    nodes = [n for n in (graph or {}).get("nodes") or [] if isinstance(n, dict)]
    plain = {
        n.get("id"): str(n.get("label") or words.get(f"type_{n.get('type')}", n.get("id"))) for n in nodes
    }
    seen: dict[str, int] = {}
    for name in plain.values():
        seen[name] = seen.get(name, 0) + 1
    return {nid: (f"{name} ({nid})" if seen[name] > 1 else name) for nid, name in plain.items()}


def sankey_figure(graph: dict, links, state_labels: dict) -> dict | None:
    """The paths people took, as a Plotly Sankey diagram (``None`` when nobody entered)."""
    links = {
        (a, b): n
        for (a, b), n in links.items()
        if not b.startswith("state:") or b.split(":", 1)[1] in SANKEY_SINKS
    }
    if not links:
        return None
    names = _node_names(graph)
    index: dict[str, int] = {}
    labels, colors = [], []
    for a, b in links:
        for key in (a, b):
            if key in index:
                continue
            index[key] = len(labels)
            if key.startswith("state:"):
                state = key.split(":", 1)[1]
                labels.append(str(state_labels.get(state, state)))
                colors.append(SANKEY_COLORS.get(state, "#607d8b"))
            else:
                labels.append(names.get(key, key))
                colors.append(SANKEY_COLORS["node"])
    figure = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={"label": labels, "color": colors, "pad": 18, "thickness": 12},
            link={
                "source": [index[a] for a, _b in links],
                "target": [index[b] for _a, b in links],
                "value": list(links.values()),
                "color": "rgba(47, 111, 159, 0.22)",
            },
        )
    )
    figure.update_layout(height=380, margin={"l": 6, "r": 6, "t": 6, "b": 6}, font={"size": 12})
    return json.loads(figure.to_json())


def _node_rows(graph: dict, counts: dict) -> list[dict]:
    words = editor.strings()
    rows = []
    for node in (graph or {}).get("nodes") or []:
        c = counts.get(node.get("id"), {})
        rows.append(
            {
                "id": node.get("id"),
                "label": node.get("label") or "",
                "type": words.get(f"type_{node.get('type')}", node.get("type")),
                "waiting": c.get("waiting", 0),
                "passed": c.get("passed", 0),
                "sent": c.get("sent", 0),
                "converted": c.get("converted", 0),
            }
        )
    return rows


def _percent(value) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _uplift_context(u) -> dict | None:
    if u is None:
        return None
    return {
        "treated": u.treated,
        "treated_converted": u.treated_converted,
        "held_out": u.held_out,
        "held_out_converted": u.held_out_converted,
        "treated_rate": _percent(u.treated_rate),
        "held_out_rate": _percent(u.held_out_rate),
        "difference": "—" if u.difference is None else f"{u.difference * 100:+.1f}",
        "low": "—" if u.low is None else f"{u.low * 100:+.1f}",
        "high": "—" if u.high is None else f"{u.high * 100:+.1f}",
        "relative": "—" if u.relative is None else f"{u.relative * 100:+.0f}%",
        "significant": u.significant,
        "ci": (
            _("95%% confidence interval: %(low)s to %(high)s")
            % {
                "low": "—" if u.low is None else f"{u.low * 100:+.1f}",
                "high": "—" if u.high is None else f"{u.high * 100:+.1f}",
            }
        ),
        "known": u.difference is not None,
    }


#: What the variants' learning says (``journeys.variants.decision``'s states).
VARIANT_STATES = {
    "collecting": gettext_lazy("collecting data"),
    "learning": gettext_lazy("learning, no winner yet"),
    "winner": gettext_lazy("a winner is found"),
    "no_difference": gettext_lazy("no difference found"),
    "single": gettext_lazy("one variant only"),
}


def _variants_context(rows: list[dict]) -> list[dict]:
    for block in rows:
        block["state_text"] = str(VARIANT_STATES.get(block["state"], block["state"]))
        for row in block["rows"]:
            row["click_rate_text"] = _percent(row["click_rate"])
            row["conversion_rate_text"] = _percent(row["conversion_rate"])
            row["share_text"] = _percent(row["share"])
            row["p_best_text"] = _percent(row["p_best"])
    return rows


@login_required
@require_GET
def journey_detail(request, pk: int):
    journey = _journey(request, pk)
    versions = list(journey.versions.select_related("proposed_by", "approved_by").order_by("-number"))
    shown = journey.live_version or (versions[0] if versions else None)
    graph = shown.graph if shown else {}
    state_labels = {k: str(v) for k, v in OUTCOME_LABELS.items()}
    counts = analytics.node_counts(journey)
    links = analytics.path_links(journey)
    sends = analytics.sends(journey)
    kinds, states = dict(ChannelKind.choices), dict(DeliveryState.choices)
    conversions = analytics.conversions(journey)
    outcomes = analytics.outcomes(journey)
    latest = versions[0] if versions else None
    user = request.user
    may_edit = lifecycle.may_edit(user, journey)
    pending = next((v for v in versions if v.state == VersionState.PENDING), None)
    figures = {}
    sankey = sankey_figure(graph, links, state_labels)
    if sankey:
        figures["sankey"] = sankey
    context = {
        "title": journey.name,
        "journey": journey,
        "shown": shown,
        "versions": [
            {
                "version": v,
                "proposed_at": beijing_text(v.proposed_at, empty="—"),
                "approved_at": beijing_text(v.approved_at, empty="—"),
            }
            for v in versions
        ],
        "node_rows": _node_rows(graph, counts),
        "outcomes": [(label, outcomes.get(value, 0)) for value, label in OUTCOME_LABELS.items()],
        "sends": [(str(kinds.get(k, k)), str(states.get(s, s)), n) for k, s, n in sends],
        "sends_total": sum(n for _k, _s, n in sends),
        "conversions": conversions,
        "uplift": _uplift_context(analytics.journey_uplift(journey)),
        "variants": _variants_context(analytics.variant_rows(journey, graph)),
        "figures": figures,
        "may_edit": may_edit and journey.status != JourneyStatus.ENDED and pending is None,
        "may_submit": may_edit and latest is not None and latest.state == VersionState.DRAFT,
        "may_pause": may_edit and journey.status == JourneyStatus.LIVE,
        "may_resume": may_edit and journey.status == JourneyStatus.PAUSED,
        "may_end": may_edit and journey.status in (JourneyStatus.LIVE, JourneyStatus.PAUSED),
        "pending": pending,
        "may_review": pending is not None and lifecycle.may_approve(user, pending),
        "created": beijing_text(journey.created),
    }
    return _render(request, "journeys/detail.html", context)


ACTIONS = {
    "submit": (
        lifecycle.submit,
        gettext_lazy("Submitted for review: a data steward of the brand approves it."),
    ),
    "pause": (lifecycle.pause, gettext_lazy("Paused: nobody moves on or enters until it is resumed.")),
    "resume": (lifecycle.resume, gettext_lazy("Resumed.")),
    "end": (lifecycle.end, gettext_lazy("Ended: the people inside have left it.")),
}


@login_required
@require_POST
def journey_action(request, pk: int, action: str):
    journey = _journey(request, pk)
    if action not in ACTIONS:
        raise Http404
    service, done = ACTIONS[action]
    try:
        service(request.user, journey)
    except (Conflict, ValidationError) as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, str(done))
    return redirect("journeys:detail", journey.pk)


# ---------------------------------------------------------------------------
# Review


@login_required
@require_GET
def review_queue(request):
    rows = [
        {"version": v, "proposed_at": beijing_text(v.proposed_at, empty="—")}
        for v in lifecycle.review_queue(request.user)
    ]
    return _render(request, "journeys/queue.html", {"title": _("Journeys to review"), "rows": rows})


class ReviewForm(forms.Form):
    note = forms.CharField(
        label=gettext_lazy("Note to the proposer"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("Required when rejecting: say what to change."),
    )


@login_required
@require_http_methods(["GET", "POST"])
def review_version(request, pk: int):
    version = get_object_or_404(
        JourneyVersion.objects.restrict(request.user, "view").select_related("journey__brand", "proposed_by"),
        pk=pk,
    )
    journey = version.journey
    form = ReviewForm(request.POST or None)
    if request.method == "POST":
        decision = request.POST.get("decision")
        if decision not in ("approve", "reject"):
            raise Http404
        if form.is_valid():
            note = form.cleaned_data["note"]
            try:
                if decision == "approve":
                    lifecycle.approve(request.user, version, note)
                    messages.success(request, _("Approved: version %(n)s is live.") % {"n": version.number})
                else:
                    lifecycle.reject(request.user, version, note)
                    messages.success(request, _("Rejected: the proposer is told why."))
            except (Conflict, ValidationError) as exc:
                messages.error(request, error_text(exc))
                return redirect("journeys:review", version.pk)
            return redirect("journeys:detail", journey.pk)
    live = journey.live_version if journey.live_version_id != version.pk else None
    context = {
        "title": _("Review: %(name)s v%(n)s") % {"name": journey.name, "n": version.number},
        "journey": journey,
        "version": version,
        "live": live,
        "form": form,
        "may_review": version.state == VersionState.PENDING and lifecycle.may_approve(request.user, version),
        "own": version.proposed_by_id == request.user.pk,
        "proposed_at": beijing_text(version.proposed_at, empty="—"),
        "catalog": {**editor.catalog(request.user, [journey.brand]), "brand": journey.brand_id},
        "strings": editor.strings(),
        "graph_json": json.dumps(version.graph, ensure_ascii=False),
    }
    return _render(request, "journeys/review.html", context)
