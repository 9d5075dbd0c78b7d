"""The dashboards' figures: pure functions from report rows and filters to Plotly figures.

Rows come in already narrowed to what the viewer may see (see :mod:`.data`); names of
business lines, categories and the reasons of cold tags are passed in as plain
mappings. Nothing here touches the database or the request, so each figure is tested
with a few hand-written rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

#: The parts of a cold-tag score, in the order they are stacked.
COMPONENTS = ("usage", "coverage", "computation", "lineage", "cost")
COMPONENT_LABELS = {
    "usage": gettext_lazy("usage"),
    "coverage": gettext_lazy("coverage"),
    "computation": gettext_lazy("computation"),
    "lineage": gettext_lazy("lineage"),
    "cost": gettext_lazy("cost"),
}
COMPONENT_COLORS = {
    "usage": "#2f6f9f",
    "coverage": "#3a9a5b",
    "computation": "#f0a30a",
    "lineage": "#8e5ea2",
    "cost": "#c62828",
}
#: What the activity chart can count, per week.
MEASURES = ("created", "changed", "approved", "used", "retired")
MEASURE_LABELS = {  # counts of what happened to tags (新增 …), not a date (创建时间)
    "created": pgettext_lazy("activity measure", "created"),
    "changed": pgettext_lazy("activity measure", "changed"),
    "approved": pgettext_lazy("activity measure", "approved"),
    "used": pgettext_lazy("activity measure", "used"),
    "retired": pgettext_lazy("activity measure", "retired"),
}
DEFAULT_MEASURE = "changed"
#: The drift threshold drawn when none is given (the engine's default, ``DRIFT_PSI_THRESHOLD``).
DEFAULT_PSI_THRESHOLD = 0.2
MARGIN = {"l": 10, "r": 10, "t": 30, "b": 10}
BAR_HEIGHT = 24


def tag_label(brief: Mapping) -> str:
    """How a figure names a tag: its Chinese name and its code."""
    return f"{brief.get('name') or ''} ({brief.get('code') or brief.get('tag')})"


def unique_labels(labels: Iterable[str], keys: Iterable) -> list[str]:
    """``labels`` with the key appended to the ones that recur (Plotly merges bars of
    the same category): two brands may well have a tag of the same name and code."""
    labels, keys = list(labels), list(keys)
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    return [
        f"{label} #{key}" if counts[label] > 1 else label for label, key in zip(labels, keys, strict=True)
    ]


def _layout(figure: go.Figure, **layout) -> go.Figure:
    figure.update_layout(margin=MARGIN, font={"size": 12}, legend={"orientation": "h", "y": -0.15}, **layout)
    return figure


def activity(
    rows: Iterable[Mapping],
    weeks: Sequence[str],
    line_names: Mapping[int, str],
    measure: str = DEFAULT_MEASURE,
) -> go.Figure:
    """Weekly counts of ``measure``, one stacked bar trace per business line of
    ``line_names`` (in its order; a line without activity draws zeros)."""
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}")
    weeks = sorted(set(weeks) | {row["week"] for row in rows if row.get("week")})
    index = {week: i for i, week in enumerate(weeks)}
    counts = {line: [0] * len(weeks) for line in line_names}
    for row in rows:
        line, week = row.get("business_line"), row.get("week")
        if line in counts and week in index:
            counts[line][index[week]] += int(row.get(measure) or 0)
    label = str(MEASURE_LABELS[measure])
    traces = [
        go.Bar(
            name=name,
            x=list(weeks),
            y=counts[line],
            legendgroup=str(line),
            hovertemplate=f"{name}<br>%{{x}}: %{{y}} {label}<extra></extra>",
        )
        for line, name in line_names.items()
    ]
    figure = go.Figure(traces)
    return _layout(
        figure,
        barmode="stack",
        height=420,
        xaxis={"title": {"text": _("Week (Monday)")}, "type": "category"},
        yaxis={"title": {"text": _("Tags %(measure)s") % {"measure": label}}},
        legend_title_text=_("Business line"),
    )


def usage_heatmap(
    rows: Iterable[Mapping], weeks: Sequence[str], category_names: Mapping[int, str]
) -> go.Figure:
    """Uses per category (rows, by name) and week (columns): the sum of the tags' weekly
    counts. Categories without a name in ``category_names`` are shown by id."""
    weeks = list(weeks)
    width = len(weeks)
    names: dict[str, int] = {}
    index, weekly = [], []
    for row in rows:
        name = category_names.get(row.get("category")) or f"#{row.get('category')}"
        index.append(names.setdefault(name, len(names)))
        counts = list((row.get("weekly") or [])[:width])
        weekly.append(counts + [0] * (width - len(counts)))
    sums = np.zeros((len(names), width), dtype=np.int64)
    if weekly:
        np.add.at(sums, np.asarray(index), np.asarray(weekly, dtype=np.int64))
    order = sorted(names)
    figure = go.Figure(
        go.Heatmap(
            x=weeks,
            y=order,
            z=[[int(n) for n in sums[names[name]]] for name in order],
            colorscale="Blues",
            name=_("uses"),
            hovertemplate="%{y}<br>%{x}: %{z}<extra></extra>",
            colorbar={"title": {"text": _("uses")}},
        )
    )
    return _layout(
        figure,
        height=max(300, 26 * len(order) + 120),
        xaxis={"title": {"text": _("Week (Monday)")}, "type": "category"},
        yaxis={"type": "category", "automargin": True},
    )


def cold_ranking(
    rows: Iterable[Mapping],
    weights: Mapping[str, float],
    reasons: Mapping[int, Sequence[str]] | None = None,
    top: int = 30,
) -> go.Figure:
    """The ``top`` cold tags by score, highest first, as horizontal bars stacked by what
    each component contributes (weight × component × 100); the reasons in the hover."""
    ranked = sorted(
        (row for row in rows if row.get("cold")),
        key=lambda row: (-float(row.get("score") or 0), str(row.get("code")), row.get("tag") or 0),
    )[:top]
    labels = unique_labels((tag_label(row) for row in ranked), (row.get("tag") for row in ranked))
    reasons = reasons or {}
    hover = ["<br>".join(reasons.get(row.get("tag"), [])) or "—" for row in ranked]
    components = [*COMPONENTS, *sorted(set(weights) - set(COMPONENTS))]
    traces = []
    for component in components:
        weight = float(weights.get(component) or 0)
        label = str(COMPONENT_LABELS.get(component, component))
        traces.append(
            go.Bar(
                name=label,
                legendgroup=component,
                orientation="h",
                y=labels,
                x=[
                    round(weight * float((row.get("components") or {}).get(component) or 0) * 100, 2)
                    for row in ranked
                ],
                marker={"color": COMPONENT_COLORS.get(component)},
                customdata=hover,
                hovertemplate=f"%{{y}}<br>{label}: %{{x:.1f}}<br>%{{customdata}}<extra></extra>",
            )
        )
    figure = go.Figure(traces)
    return _layout(
        figure,
        barmode="stack",
        height=max(300, BAR_HEIGHT * len(ranked) + 120),
        xaxis={"title": {"text": _("Cold score (0–100)")}, "range": [0, 100]},
        yaxis={"autorange": "reversed", "type": "category", "automargin": True},
        legend_title_text=_("Component"),
    )


def _floats(values: Iterable) -> np.ndarray:
    """The values as a numpy array: Plotly checks an array at once (a list item by item,
    slow for 10,000 tags) and sends it to the browser as a compact typed array."""
    return np.fromiter((float(v) for v in values if v is not None), dtype=float)


def coverage_histogram(values: Iterable[float]) -> go.Figure:
    """How many tags cover what share of the people (0‥1, in 5 % bins)."""
    values = _floats(values)
    figure = go.Figure(
        go.Histogram(
            x=values,
            name=_("coverage"),
            xbins={"start": 0, "end": 1.0001, "size": 0.05},
            marker={"color": "#3a9a5b"},
            hovertemplate=_("coverage %{x}: %{y} tag(s)") + "<extra></extra>",
        )
    )
    return _layout(
        figure,
        height=320,
        bargap=0.05,
        xaxis={"title": {"text": _("Coverage")}, "range": [0, 1], "tickformat": ".0%"},
        yaxis={"title": {"text": _("Tags")}},
    )


def psi_histogram(values: Iterable[float], threshold: float = DEFAULT_PSI_THRESHOLD) -> go.Figure:
    """The population stability index of the tags, the drift threshold marked."""
    values = _floats(values)
    figure = go.Figure(
        go.Histogram(
            x=values,
            name="PSI",
            marker={"color": "#2f6f9f"},
            hovertemplate=_("PSI %{x}: %{y} tag(s)") + "<extra></extra>",
        )
    )
    figure.add_vline(
        x=threshold,
        line={"color": "#c62828", "dash": "dash", "width": 2},
        annotation_text=_("drift threshold %(threshold)s") % {"threshold": threshold},
        annotation_position="top right",
    )
    return _layout(
        figure,
        height=320,
        bargap=0.05,
        xaxis={"title": {"text": _("Population stability index (PSI)")}},
        yaxis={"title": {"text": _("Tags")}},
    )


def jaccard_of(pair: Mapping) -> float | None:
    """The members overlap of a merge pair (``None`` without overlap evidence)."""
    for evidence in pair.get("evidence") or []:
        if evidence.get("kind") == "overlap" and evidence.get("jaccard") is not None:
            return float(evidence["jaccard"])
    return None


def pair_label(pair: Mapping) -> str:
    """The two tags of a pair on two lines, so that the label fits beside the bars."""
    return f"{tag_label(pair.get('a') or {})} ↔<br>{tag_label(pair.get('b') or {})}"


def duplicate_scores(pairs: Sequence[Mapping]) -> go.Figure:
    """Merge suggestions as horizontal bars: the pair's score and, where known, the
    Jaccard overlap of their members (both 0‥1), in the order given."""
    keys = [f"{(p.get('a') or {}).get('tag')}:{(p.get('b') or {}).get('tag')}" for p in pairs]
    labels = unique_labels((pair_label(p) for p in pairs), keys)
    figure = go.Figure(
        [
            go.Bar(
                name=_("score"),
                legendgroup="score",
                orientation="h",
                y=labels,
                x=[round(float(p.get("score") or 0), 4) for p in pairs],
                marker={"color": "#2f6f9f"},
                hovertemplate="%{y}<br>" + _("score") + " %{x:.2f}<extra></extra>",
            ),
            go.Bar(
                name=_("members overlap (Jaccard)"),
                legendgroup="jaccard",
                orientation="h",
                y=labels,
                x=[jaccard_of(p) for p in pairs],
                marker={"color": "#f0a30a"},
                hovertemplate="%{y}<br>Jaccard %{x:.0%}<extra></extra>",
            ),
        ]
    )
    return _layout(
        figure,
        barmode="group",
        height=max(300, 2 * BAR_HEIGHT * len(pairs) + 120),
        xaxis={"range": [0, 1], "tickformat": ".0%", "automargin": True},
        yaxis={"autorange": "reversed", "type": "category", "automargin": True, "tickfont": {"size": 11}},
    )


def compact(figure: go.Figure, height: int = 260) -> go.Figure:
    """``figure`` made small for the dashboard (in place): no legend, little margin."""
    figure.update_layout(
        height=height,
        showlegend=False,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis_title_text="",
        yaxis_title_text="",
    )
    return figure
