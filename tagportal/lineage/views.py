"""The lineage page: the graph source → field → (algorithm model →) tag → tag as a
Plotly Sankey, drawn from what the user may view, with stale sources and the tags and
models they feed in red. Clicking a node opens its impact (a model: its page).

``/lineage/`` shows everything (filtered by business line or brand); ``/lineage/impact/``
with ``?source=<code>``, ``?field=<id>`` or ``?tag=<id>`` shows only what depends on it
(and, for a tag an algorithm model fills, where its values come from: the model, the
fields it reads and their sources).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import networkx as nx
import plotly.graph_objects as go
from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from tagportal.catalog.models import Brand, BusinessLine, Tag
from tagportal.core.filters import id_or_none
from tagportal.predictive.choices import KIND_SHORT_LABELS
from tagportal.predictive.models import PredictiveModel

from . import services
from .models import DataField, DataSource

COLORS = {
    services.SOURCE: "#2f6f9f",
    services.FIELD: "#8c9aa8",
    services.MODEL: "#7b52ab",
    services.TAG: "#3a9a5b",
}
KIND_ORDER = {services.SOURCE: 0, services.FIELD: 1, services.MODEL: 2, services.TAG: 3}
#: Pixels per link through a node, between nodes, around the figure; height limits.
NODE_UNIT, NODE_PAD, MARGIN = 12, 12, 10
#: Room right of the figure for the labels of the last column, and below it: plotly.js
#: may push the lowest nodes a little past the height the layout asked for.
LABEL_ROOM, SLACK = 160, 1.08
MIN_HEIGHT, MAX_HEIGHT = 400, 8000
#: The most nodes one view draws (more are unreadable): beyond, the page asks for a filter.
MAX_NODES = 60
#: How far the "focus on this tag" view reaches upstream and downstream.
FOCUS_DEPTH = 2
#: How many tags a search lists.
MAX_FOUND = 20
ROOT_COLOR = "#f0a30a"
STALE_SOURCE_COLOR = "#c62828"
STALE_TAG_COLOR = "#ef5350"
LINK_COLOR = "rgba(140, 154, 168, 0.35)"
STALE_LINK_COLOR = "rgba(198, 40, 40, 0.35)"


@dataclass
class Focus:
    kind: str
    obj: DataSource | DataField | Tag
    impact: services.Impact
    #: For a tag an algorithm model fills: what it reads (the model, its fields, their sources).
    filled_by: services.Impact | None = None


@dataclass
class Drawing:
    figure: go.Figure | None = None
    counts: dict[str, int] = field(default_factory=dict)
    stale_rows: list[dict] = field(default_factory=list)
    #: The URL each node opens when clicked, in the order of the figure's nodes.
    links: list[str] = field(default_factory=list)
    models: list[PredictiveModel] = field(default_factory=list)
    #: How many nodes the view has; more than drawn when it was cut to ``MAX_NODES``.
    total: int = 0


def _int(value) -> int | None:
    return id_or_none(value) if isinstance(value, str) else None


def _focus(request) -> Focus | None:
    params, user = request.GET, request.user
    obj = kind = None
    if params.get("source"):
        kind = services.SOURCE
        obj = DataSource.objects.restrict(user, "view").filter(code=params["source"]).first()
    elif params.get("field"):
        kind = services.FIELD
        pk = _int(params["field"])
        obj = (
            DataField.objects.restrict(user, "view").select_related("source").filter(pk=pk).first()
            if pk
            else None
        )
    elif params.get("tag"):
        kind = services.TAG
        pk = _int(params["tag"])
        obj = Tag.objects.restrict(user, "view").select_related("brand").filter(pk=pk).first() if pk else None
    else:
        return None
    if obj is None:
        raise Http404(_("Nothing to show: it does not exist or you may not view it."))
    filled_by = None
    if kind == services.TAG and PredictiveModel.objects.filter(outputs__tag=obj, is_active=True).exists():
        filled_by = services.upstream(obj)
    return Focus(kind=kind, obj=obj, impact=services.impact(obj), filled_by=filled_by)


def _label(kind, obj, with_brand: bool = False) -> str:
    if kind == services.SOURCE:
        return obj.name
    if kind == services.FIELD:
        return f"{obj.source.code}.{obj.name}"
    if kind == services.MODEL:
        label = f"{obj.name} · {KIND_SHORT_LABELS.get(obj.kind, obj.kind)}"
        return f"{label} · {obj.brand.name}" if with_brand else label
    return f"{obj.name} · {obj.brand.name}" if with_brand else obj.name


def _hover(kind, obj, reasons: list[str]) -> str:
    if kind == services.SOURCE:
        lines = [f"{obj.name} ({obj.code})", str(obj.get_kind_display())]
    elif kind == services.FIELD:
        lines = [str(obj), _("feeds %(target)s") % {"target": obj.maps_to or "—"}]
    elif kind == services.MODEL:
        lines = [
            _("Algorithm model %(name)s") % {"name": obj.name},
            str(obj.get_kind_display()),
            str(obj.brand),
        ]
    else:
        lines = [f"{obj.name} ({obj.code})", str(obj.brand)]
    return "<br>".join(lines + reasons)


def _link(kind, obj) -> str:
    """Where clicking a node leads: a model's page, else the node's impact."""
    if kind == services.MODEL:
        return reverse("predictive:detail", args=[obj.pk])
    value = obj.code if kind == services.SOURCE else obj.pk
    return f"{reverse('lineage:impact')}?{urlencode({kind: value})}"


def draw(
    request,
    focus: Focus | None,
    business_line: BusinessLine | None,
    brand: Brand | None,
    keep: set | None = None,
    root: tuple | None = None,
) -> Drawing:
    """The Sankey of everything the user may view, narrowed by the filters, the focus and
    ``keep`` (the nodes of a tag's neighbourhood or of a search), at most ``MAX_NODES``."""
    user = request.user
    sources = DataSource.objects.restrict(user, "view")
    fields = DataField.objects.restrict(user, "view").select_related("source")
    tags = Tag.objects.restrict(user, "view").select_related("brand")
    models = PredictiveModel.objects.restrict(user, "view").select_related("brand")
    if business_line is not None:
        sources = sources.filter(Q(business_line=business_line) | Q(business_line__isnull=True))
        fields = fields.filter(source__in=sources)
        tags = tags.filter(business_line=business_line)
        models = models.filter(brand__business_line=business_line)
    if brand is not None:
        tags = tags.filter(brand=brand)
        models = models.filter(brand=brand)
    if focus is not None:
        impact = focus.impact
        root = focus.obj
        tag_ids = impact.tag_ids | ({root.pk} if focus.kind == services.TAG else set())
        model_ids = {m.pk for m in impact.models}
        if focus.kind == services.SOURCE:
            sources = sources.filter(pk=root.pk)
            fields = fields.filter(source=root)
        elif focus.kind == services.FIELD:
            sources = sources.filter(pk=root.source_id)
            fields = fields.filter(pk=root.pk)
        elif focus.filled_by is not None:  # a model's output tag: where its values come from
            sources = sources.filter(pk__in=[s.pk for s in focus.filled_by.sources])
            fields = fields.filter(pk__in=[f.pk for f in focus.filled_by.fields])
            model_ids |= {m.pk for m in focus.filled_by.models}
            tag_ids |= focus.filled_by.tag_ids  # the tags the model reads
        else:
            sources, fields = sources.none(), fields.none()
        models = models.filter(pk__in=model_ids)
        tags = tags.filter(pk__in=tag_ids)
    objects = {
        **{(services.SOURCE, s.pk): s for s in sources},
        **{(services.FIELD, f.pk): f for f in fields},
        **{(services.MODEL, m.pk): m for m in models},
        **{(services.TAG, t.pk): t for t in tags},
    }
    if keep is not None:
        objects = {node: obj for node, obj in objects.items() if node in keep}
    graph = services.lineage_graph()
    edges = [(a, b) for a, b in graph.edges if a in objects and b in objects]
    total = len({node for edge in edges for node in edge})
    edges = _at_most(edges, MAX_NODES)

    stale_sources = {s.pk: s for s in services.stale_sources()}
    visible_tag_ids = {pk for kind, pk in objects if kind == services.TAG}
    stale_tags = (
        services.stale_tag_ids(Tag.objects.filter(pk__in=visible_tag_ids)) if visible_tag_ids else set()
    )
    reasons = services.stale_reasons(stale_tags)

    drawing = Drawing(total=total)
    shown = sorted({node for edge in edges for node in edge}, key=lambda n: (KIND_ORDER[n[0]], n[1]))
    drawing.counts = {kind: sum(1 for n in shown if n[0] == kind) for kind in COLORS}
    drawing.stale_rows = _stale_rows(graph, stale_sources, objects, visible_tag_ids)
    drawing.models = sorted(
        (objects[n] for n in shown if n[0] == services.MODEL), key=lambda m: (m.brand.code, m.name)
    )
    if not edges:
        return drawing

    index = {node: i for i, node in enumerate(shown)}
    stale_nodes = {(services.SOURCE, pk) for pk in stale_sources} | {(services.TAG, pk) for pk in stale_tags}
    stale_nodes |= {
        (services.FIELD, f.pk)
        for (kind, _pk), f in objects.items()
        if kind == services.FIELD and f.source_id in stale_sources
    }
    stale_nodes |= {
        node
        for node in shown
        if node[0] == services.MODEL and any(p in stale_nodes for p in graph.predecessors(node))
    }
    with_brand = (
        len({objects[n].brand_id for n in shown if n[0] in (services.TAG, services.MODEL)}) > 1
    )  # same names recur
    colors, labels, hovers, outlines = [], [], [], []
    for node in shown:
        kind, pk = node
        obj = objects[node]
        labels.append(_label(kind, obj, with_brand))
        node_reasons = []
        if kind == services.SOURCE and pk in stale_sources:
            node_reasons = [services.stale_reason(obj)]
        elif kind == services.TAG:
            node_reasons = reasons.get(pk, [])
        hovers.append(_hover(kind, obj, node_reasons))
        drawing.links.append(_link(kind, obj))
        if node in stale_nodes and kind != services.FIELD:
            colors.append(STALE_SOURCE_COLOR if kind == services.SOURCE else STALE_TAG_COLOR)
        else:
            colors.append(COLORS[kind])
        is_root = node == root or (focus is not None and node == (focus.kind, focus.obj.pk))
        if is_root and node not in stale_nodes:
            colors[-1] = ROOT_COLOR
        outlines.append("#000000" if is_root else "rgba(0, 0, 0, 0.25)")
    link_colors = [STALE_LINK_COLOR if a in stale_nodes else LINK_COLOR for a, _b in edges]
    placed = layout(shown, edges) or Layout(positions={}, height=MIN_HEIGHT * 2, pad=NODE_PAD)
    positions = placed.positions
    position = (
        {"x": [positions[n][0] for n in shown], "y": [positions[n][1] for n in shown]} if positions else {}
    )
    sankey = go.Sankey(
        arrangement="snap",
        node={
            "label": labels,
            **position,
            "color": colors,
            "customdata": hovers,
            "hovertemplate": "%{customdata}<extra></extra>",
            "pad": placed.pad,
            "thickness": 16,
            # One width for all: plotly.js mispositions labels given a list of widths.
            "line": {"color": outlines, "width": 1},
        },
        link={
            "source": [index[a] for a, _b in edges],
            "target": [index[b] for _a, b in edges],
            "value": [1] * len(edges),
            "color": link_colors,
        },
    )
    figure = go.Figure(sankey)
    figure.update_layout(
        height=int(placed.height * SLACK) + 2 * MARGIN,
        margin={"l": MARGIN, "r": LABEL_ROOM, "t": MARGIN, "b": MARGIN + int(placed.height * (SLACK - 1))},
        font={"size": 12},
    )
    drawing.figure = figure
    return drawing


def _at_most(edges: list, limit: int) -> list:
    """The edges among at most ``limit`` nodes: whole tags with what they read, the tags
    first in the order of their ids, so that a cut view still shows complete chains."""
    nodes = {node for edge in edges for node in edge}
    if len(nodes) <= limit:
        return edges
    graph = nx.DiGraph(edges)
    kept: set = set()
    ends = sorted((n for n in nodes if n[0] == services.TAG), key=lambda n: n[1])
    for node in ends:
        chain = ({node} | nx.ancestors(graph, node)) - kept
        if len(kept) + len(chain) <= limit:
            kept |= chain
    return [(a, b) for a, b in edges if a in kept and b in kept]


def neighbourhood(tag: Tag, depth: int = FOCUS_DEPTH) -> set:
    """The tag, what it reads and what reads it, up to ``depth`` steps either way."""
    graph = services.lineage_graph()
    root = (services.TAG, tag.pk)
    if root not in graph:
        return {root}
    down = nx.single_source_shortest_path_length(graph, root, cutoff=depth)
    up = nx.single_source_shortest_path_length(graph.reverse(copy=False), root, cutoff=depth)
    return set(down) | set(up)


@dataclass
class Layout:
    positions: dict  # node -> (x, y), 0‥1, y the centre of the node from the top
    height: int  # pixels the nodes need
    pad: int  # pixels between nodes of a column


def layout(nodes: list, edges: list) -> Layout | None:
    """Place nodes in columns: sources, fields, then models and tags by how many models and
    tags lie upstream of them, so a composite tag stands right of the tags it reads and
    a model's output tags right of the model. Within a column, nodes
    sit near the average height of what feeds them, stacked by their size (every link
    counts 1) so that none overlaps and the figure is as tall as its fullest column.
    ``None`` for a graph with a cycle (only possible through raw database edits)."""
    graph = nx.DiGraph(edges)
    if not nx.is_directed_acyclic_graph(graph):
        return None
    level: dict = {}
    for node in nx.topological_sort(graph):
        kind = node[0]
        if kind == services.SOURCE:
            level[node] = 0
        elif kind == services.FIELD:
            level[node] = 1
        else:
            upstream = [
                level[p] + 1 for p in graph.predecessors(node) if p[0] in (services.TAG, services.MODEL)
            ]
            level[node] = max(upstream, default=2)
    first, last = min(level.values(), default=0), max(level.values(), default=0)
    span = max(last - first, 1)
    size = {node: max(graph.in_degree(node), graph.out_degree(node), 1) for node in nodes}
    columns: dict[int, list] = defaultdict(list)
    for node in nodes:
        columns[level[node]].append(node)
    pad = NODE_PAD

    def extent(members, unit):
        return unit * sum(size[n] for n in members) + pad * (len(members) - 1)

    natural = max(extent(m, NODE_UNIT) for m in columns.values())
    if natural > MAX_HEIGHT:
        pad = 3  # a very large graph: compact
        natural = max(extent(m, 3) for m in columns.values())
    height = max(MIN_HEIGHT, natural)
    # Plotly scales nodes to fill the height, as much as the fullest column allows.
    unit = min((height - pad * (len(m) - 1)) / sum(size[n] for n in m) for m in columns.values())
    y: dict = {}
    for column in sorted(columns):
        members = columns[column]

        def fed_from(node):
            feeding = [y[p] for p in graph.predecessors(node) if p in y]
            return (sum(feeding) / len(feeding) if feeding else 0.5, node[1])

        members.sort(key=fed_from)
        top = (height - extent(members, unit)) / 2
        for node in members:
            y[node] = (top + unit * size[node] / 2) / height
            top += unit * size[node] + pad
    positions = {
        node: (0.001 + 0.998 * (level[node] - first) / span, min(max(y[node], 0.001), 0.999))
        for node in nodes
    }
    return Layout(positions=positions, height=int(height), pad=pad)


def _stale_rows(graph, stale_sources: dict, objects: dict, visible_tag_ids: set[int]) -> list[dict]:
    rows = []
    for pk, source in sorted(stale_sources.items(), key=lambda item: item[1].name):
        node = (services.SOURCE, pk)
        if node not in objects:
            continue
        reached = nx.descendants(graph, node) if node in graph else set()
        tag_nodes = [
            objects[n] for n in reached if n[0] == services.TAG and n[1] in visible_tag_ids and n in objects
        ]
        rows.append(
            {
                "source": source,
                "reason": services.stale_reason(source),
                "tags": sorted(tag_nodes, key=lambda t: (t.brand.code, t.code)),
            }
        )
    return rows


def _choice(model_queryset, value):
    pk = _int(value)
    return model_queryset.filter(pk=pk).first() if pk else None


def _search(tags, query: str):
    return tags.filter(Q(name__icontains=query) | Q(code__icontains=query) | Q(name_en__icontains=query))


@login_required
def lineage(request):
    user = request.user
    params = request.GET
    focus = _focus(request)
    lines = BusinessLine.objects.restrict(user, "view")
    brands = Brand.objects.restrict(user, "view").select_related("business_line")
    visible_tags = Tag.objects.restrict(user, "view").select_related("brand")
    business_line = _choice(lines, params.get("business_line"))
    brand = _choice(brands, params.get("brand"))
    query = params.get("q", "").strip()[:100]
    around = None
    if params.get("focus"):
        pk = _int(params["focus"])
        around = visible_tags.filter(pk=pk).first() if pk else None
        if around is None:
            raise Http404(_("Nothing to show: it does not exist or you may not view it."))
    # No filter at all: the user's first business line (the whole graph is unreadable).
    defaulted = (
        focus is None
        and around is None
        and not query
        and brand is None
        and business_line is None
        and params.get("business_line") != "all"
    )
    if defaulted:
        business_line = lines.first()
    keep, found = None, []
    if around is not None:
        keep = neighbourhood(around)
        business_line = brand = None
    elif query and focus is None:
        matches = _search(visible_tags, query)
        if business_line is not None:
            matches = matches.filter(business_line=business_line)
        if brand is not None:
            matches = matches.filter(brand=brand)
        found = list(matches.order_by("brand__code", "code")[: MAX_FOUND + 1])
        keep = set()
        for tag in found[:MAX_FOUND]:
            keep |= neighbourhood(tag, depth=1)
    root = (services.TAG, around.pk) if around is not None else None
    drawing = draw(request, focus, business_line, brand, keep, root)
    figure_html = ""
    if drawing.figure is not None:
        figure_html = drawing.figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            config={"displaylogo": False, "responsive": True},
            default_height=f"{drawing.figure.layout.height}px",
        )
    if focus is not None:
        title = _("Impact of %(obj)s") % {"obj": focus.obj}
    elif around is not None:
        title = _("Around %(tag)s: what it reads and what reads it") % {"tag": around}
    else:
        title = _("Lineage")
    graph_tags = visible_tags.filter(
        Q(lineage_inputs__isnull=False)
        | Q(lineage_dependents__isnull=False)
        | Q(model_output__model__lineage_inputs__isnull=False)
        | Q(model_inputs__isnull=False)
    ).distinct()
    drawn = sum(drawing.counts.values())
    context = {
        **admin.site.each_context(request),
        "title": title,
        "focus": focus,
        "around": around,
        "query": query,
        "found": found[:MAX_FOUND],
        "found_more": len(found) > MAX_FOUND,
        "defaulted": defaulted and business_line is not None,
        "shown_line": business_line,
        "filtered": bool(business_line or brand or query or around) and graph_tags.exists(),
        "drawn": drawn,
        "total": drawing.total,
        "cut": drawing.total > drawn,
        "max_nodes": MAX_NODES,
        "figure_html": figure_html,
        "figure": drawing.figure.to_plotly_json() if drawing.figure is not None else None,
        "counts": drawing.counts,
        "node_links": drawing.links,
        "graph_models": drawing.models,
        "stale_rows": drawing.stale_rows,
        "business_lines": lines,
        "brands": brands,
        "sources": DataSource.objects.restrict(user, "view"),
        "fields": DataField.objects.restrict(user, "view").select_related("source"),
        "graph_tags": graph_tags.order_by("brand__code", "code"),
        "selected": {
            "business_line": business_line.pk
            if business_line
            else ("all" if params.get("business_line") == "all" else None),
            "brand": brand.pk if brand else None,
            "source": params.get("source", ""),
            "field": _int(params.get("field", "")),
            "tag": _int(params.get("tag", "")),
        },
    }
    return TemplateResponse(request, "lineage/graph.html", context)
