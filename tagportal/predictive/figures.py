"""The model pages' figures: Plotly figures built from what a run stored (its metrics and
chart data), plus the numbers of the published output tags where a distribution needs
them. Pure functions of plain dicts, so each is tested without a database, except
:func:`output_numbers` (which reads the engine's stored results).

What each kind draws:

- **Churn warning**: the ROC curve when the run stored its points (``charts.roc_curve``
  with ``fpr`` and ``tpr``; the churn report does not keep them today, so the page shows
  the AUC as a number), the calibration curve (ten quantile bins of the validation
  cut-off), the lift by bin (each calibration bin's churn rate over the base rate: with
  quantile bins, the lift by decile of predicted probability), the permutation
  importances and the candidates' AUC.
- **RFM**: people per segment; people per R, F and M score.
- **Lifetime value**: people per purchase intent level; the distributions of CLV and
  purchase intent (from the published tags, when the run shown is the one they hold).
- **AIPL**: people per stage; the weekly stage flows as a Sankey
  (:func:`tagportal.predictive.aipl.sankey_figure`).
- Every kind: the history of the fitted parameters (and key metric) across runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import plotly.graph_objects as go
from django.utils.translation import gettext as _
from plotly.subplots import make_subplots

from . import aipl, summaries
from .choices import AiplStage, ModelKind, RfmSegment

MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
COLOR = "#2f6f9f"
ACCENT = "#c62828"
LEVEL_COLORS = {"high": "#c62828", "medium": "#f0a30a", "low": "#3a9a5b"}
#: Parameters drawn in the history, at most.
HISTORY_PARAMETERS = 9
HISTORY_COLUMNS = 3


def _layout(figure: go.Figure, title: str, **layout) -> go.Figure:
    figure.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        margin=layout.pop("margin", MARGIN),
        font={"size": 12},
        showlegend=layout.pop("showlegend", False),
        **layout,
    )
    return figure


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def level_labels() -> dict[str, str]:
    """高 / 中 / 低: the labels of the level tags' values (data, as in the dictionary)."""
    from .kinds import LEVELS

    return {level["code"]: level["label"] for level in LEVELS}


def _counts_bar(counts: Mapping[str, int], labels: Mapping[str, str], title: str, colors=None) -> go.Figure:
    keys = [k for k in labels if k in counts] + [k for k in counts if k not in labels]
    figure = go.Figure(
        go.Bar(
            x=[str(labels.get(k, k)) for k in keys],
            y=[int(counts[k] or 0) for k in keys],
            marker_color=[(colors or {}).get(k, COLOR) for k in keys],
            hovertemplate="%{x}: %{y}<extra></extra>",
            text=[int(counts[k] or 0) for k in keys],
            textposition="outside",
            cliponaxis=False,
        )
    )
    return _layout(
        figure, title, height=340, yaxis={"title": {"text": _("People")}}, xaxis={"type": "category"}
    )


# ---------------------------------------------------------------------------------------------
# Churn


def roc_points(metrics: Mapping, charts: Mapping) -> tuple[list[float], list[float]] | None:
    """The ROC curve's points (false and true positive rates) when the run stored them
    (``charts.roc_curve`` or ``metrics.validation.roc_curve``, each ``{"fpr", "tpr"}``);
    None otherwise: they cannot be rebuilt from the calibration bins, which keep no
    counts."""
    for source in (charts.get("roc_curve"), (metrics.get("validation") or {}).get("roc_curve")):
        if isinstance(source, Mapping):
            fpr, tpr = source.get("fpr"), source.get("tpr")
            if isinstance(fpr, list) and isinstance(tpr, list) and len(fpr) == len(tpr) >= 2:
                return [float(v) for v in fpr], [float(v) for v in tpr]
    return None


def roc_figure(fpr: Sequence[float], tpr: Sequence[float], auc: float | None) -> go.Figure:
    figure = go.Figure(
        [
            go.Scatter(
                x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "#999"}, hoverinfo="skip"
            ),
            go.Scatter(
                x=list(fpr),
                y=list(tpr),
                mode="lines",
                line={"color": COLOR},
                hovertemplate=_("false positive rate")
                + " %{x:.3f}<br>"
                + _("true positive rate")
                + " %{y:.3f}"
                "<extra></extra>",
            ),
        ]
    )
    title = _("ROC curve") + (f" (AUC {auc:.3f})" if auc is not None else "")
    return _layout(
        figure,
        title,
        height=360,
        xaxis={"title": {"text": _("False positive rate")}, "range": [0, 1]},
        yaxis={"title": {"text": _("True positive rate")}, "range": [0, 1], "scaleanchor": "x"},
    )


def calibration_figure(curve: Mapping) -> go.Figure | None:
    predicted = curve.get("mean_predicted") or []
    observed = curve.get("fraction_positive") or []
    pairs = [(p, o) for p, o in zip(predicted, observed, strict=False) if p is not None and o is not None]
    if not pairs:
        return None
    top = min(1.0, math.ceil(max(max(p, o) for p, o in pairs) * 10 + 0.5) / 10)
    figure = go.Figure(
        [
            go.Scatter(
                x=[0, top],
                y=[0, top],
                mode="lines",
                name=_("Perfectly calibrated"),
                line={"dash": "dot", "color": "#999"},
                hoverinfo="skip",
            ),
            go.Scatter(
                x=[p for p, _o in pairs],
                y=[o for _p, o in pairs],
                mode="lines+markers",
                name=_("Model"),
                line={"color": COLOR},
                hovertemplate=_("predicted") + " %{x:.3f}<br>" + _("observed") + " %{y:.3f}<extra></extra>",
            ),
        ]
    )
    return _layout(
        figure,
        _("Calibration curve (validation cut-off, ten quantile bins)"),
        height=360,
        showlegend=True,
        legend={"orientation": "h", "y": -0.2},
        xaxis={"title": {"text": _("Mean predicted churn probability")}, "range": [0, top]},
        yaxis={"title": {"text": _("Observed churn rate")}, "range": [0, top]},
    )


def lift_by_bin(curve: Mapping, base_rate: float | None) -> list[float]:
    """Each calibration bin's churn rate over the base rate, the highest predicted bin
    first (the bins are quantiles of the predicted probability: deciles, when no ties
    merge them)."""
    if not base_rate:
        return []
    observed = [o for o in (curve.get("fraction_positive") or []) if o is not None]
    return [o / base_rate for o in reversed(observed)]


def lift_figure(lifts: Sequence[float], top_decile: float | None) -> go.Figure | None:
    if not lifts:
        return None
    labels = [str(k + 1) for k in range(len(lifts))]
    figure = go.Figure(
        go.Bar(
            x=labels,
            y=list(lifts),
            marker_color=[ACCENT if k == 0 else COLOR for k in range(len(lifts))],
            text=[f"{v:.2f}" for v in lifts],
            textposition="outside",
            cliponaxis=False,
            hovertemplate=_("decile") + " %{x}: " + _("lift") + " %{y:.2f}<extra></extra>",
        )
    )
    figure.add_hline(y=1, line_dash="dot", line_color="#999")
    title = _("Lift by decile of predicted probability")
    if top_decile is not None:
        title += " · " + _("top decile %(lift).2f") % {"lift": top_decile}
    return _layout(
        figure,
        title,
        height=360,
        xaxis={"title": {"text": _("Decile (1 = highest predicted risk)")}, "type": "category"},
        yaxis={"title": {"text": _("Lift")}},
    )


def importance_figure(importances: Iterable[Mapping]) -> go.Figure | None:
    rows = [r for r in importances or [] if r.get("mean") is not None]
    if not rows:
        return None
    rows = list(reversed(rows))  # the largest at the top
    figure = go.Figure(
        go.Bar(
            x=[r["mean"] for r in rows],
            y=[str(r["feature"]) for r in rows],
            orientation="h",
            marker_color=COLOR,
            error_x={"type": "data", "array": [r.get("std") or 0 for r in rows], "color": "#777"},
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    return _layout(
        figure,
        _("Permutation importances (drop in validation AUC)"),
        height=max(260, 60 + 24 * len(rows)),
        xaxis={"title": {"text": _("Drop in AUC")}},
        yaxis={"automargin": True, "type": "category"},
    )


def candidates_figure(candidates: Mapping) -> go.Figure | None:
    rows = [
        (summaries.candidate_label(name), c.get("auc"))
        for name, c in (candidates or {}).items()
        if isinstance(c, Mapping)
    ]
    rows = [(name, auc) for name, auc in rows if auc is not None]
    if not rows:
        return None
    figure = go.Figure(
        go.Bar(
            x=[name for name, _a in rows],
            y=[auc for _n, auc in rows],
            marker_color=COLOR,
            text=[f"{auc:.3f}" for _n, auc in rows],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: AUC %{y:.3f}<extra></extra>",
        )
    )
    return _layout(
        figure,
        _("Candidates' validation AUC (before calibration)"),
        height=320,
        xaxis={"type": "category"},
        yaxis={"title": {"text": "AUC"}, "range": [0, 1]},
    )


def churn_figures(metrics: Mapping, charts: Mapping) -> dict[str, go.Figure | None]:
    validation = metrics.get("validation") or {}
    curve = charts.get("calibration_curve") or validation.get("calibration_curve") or {}
    points = roc_points(metrics, charts)
    buckets = metrics.get("buckets") or {}
    return {
        "roc": roc_figure(*points, validation.get("auc")) if points else None,
        "calibration": calibration_figure(curve),
        "lift": lift_figure(
            lift_by_bin(curve, validation.get("base_rate")), validation.get("lift_top_decile")
        ),
        "importances": importance_figure(charts.get("permutation_importances") or []),
        "candidates": candidates_figure(charts.get("candidates") or metrics.get("candidates") or {}),
        "levels": _counts_bar(buckets, level_labels(), _("People per churn warning level"), LEVEL_COLORS)
        if buckets
        else None,
    }


# ---------------------------------------------------------------------------------------------
# RFM, lifetime value, AIPL


def rfm_figures(metrics: Mapping, charts: Mapping) -> dict[str, go.Figure | None]:
    from .kinds import SEGMENT_LABELS

    segments = charts.get("segments") or metrics.get("segments") or {}
    score_counts = metrics.get("score_counts") or {}
    scores = None
    if score_counts:
        scores = go.Figure(
            [
                go.Bar(
                    name=name.upper(), x=[str(s) for s in range(1, 6)], y=list(score_counts.get(name) or [])
                )
                for name in "rfm"
                if score_counts.get(name)
            ]
        )
        _layout(
            scores,
            _("People per R, F and M score"),
            height=320,
            showlegend=True,
            barmode="group",
            xaxis={"title": {"text": _("Score")}, "type": "category"},
            yaxis={"title": {"text": _("People")}},
        )
    labels = {str(code): SEGMENT_LABELS[code] for code in RfmSegment}
    return {
        "segments": _counts_bar(segments, labels, _("People per RFM segment")) if segments else None,
        "scores": scores,
    }


def histogram(values: pd.Series, title: str, axis: str, bins: int = 40) -> go.Figure | None:
    values = values.dropna()
    if values.empty:
        return None
    upper = float(values.quantile(0.99))
    clipped = values[values <= upper] if upper > 0 else values
    figure = go.Figure(
        go.Histogram(
            x=clipped.to_numpy(), nbinsx=bins, marker_color=COLOR, hovertemplate="%{x}: %{y}<extra></extra>"
        )
    )
    note = _("%(people)s people; the top 1%% above %(upper)s left out") % {
        "people": len(values),
        "upper": f"{upper:,.2f}",
    }
    return _layout(
        figure,
        f"{title}<br><sup>{note}</sup>",
        height=340,
        margin={**MARGIN, "t": 60},
        xaxis={"title": {"text": axis}},
        yaxis={"title": {"text": _("People")}},
        bargap=0.05,
    )


def clv_figures(metrics: Mapping, charts: Mapping, numbers: Mapping[str, pd.Series] | None) -> dict:
    levels = metrics.get("purchase_intent_levels") or {}
    numbers = numbers or {}
    return {
        "intent_levels": _counts_bar(
            levels, level_labels(), _("People per purchase intent level"), LEVEL_COLORS
        )
        if levels
        else None,
        "intent": histogram(
            numbers["purchase_intent"], _("Purchase intent"), _("P(a purchase in the period)")
        )
        if "purchase_intent" in numbers
        else None,
        "clv": histogram(numbers["clv"], _("Customer lifetime value"), _("CLV (yuan)"))
        if "clv" in numbers
        else None,
    }


def aipl_figures(metrics: Mapping, charts: Mapping) -> dict[str, go.Figure | None]:
    from .kinds import STAGE_LABELS

    stages = metrics.get("stages") or {}
    flows = charts.get("flows") or []
    sankey = None
    if flows:
        frame = pd.DataFrame(flows)
        if set(aipl.FLOW_COLUMNS) <= set(frame.columns) and (frame["people"] > 0).any():
            sankey = stack_sankey_nodes(aipl.sankey_figure(frame))
            sankey.update_layout(height=520, margin={"l": 10, "r": 10, "t": 90, "b": 10})
            sankey.update_layout(title={"text": _("Weekly AIPL stage flows"), "x": 0, "font": {"size": 14}})
    labels = {str(code): STAGE_LABELS[code] for code in AiplStage}
    return {
        "stages": _counts_bar(stages, labels, _("People per AIPL stage")) if stages else None,
        "sankey": sankey,
    }


def stack_sankey_nodes(figure: go.Figure, low: float = 0.08, high: float = 0.98) -> go.Figure:
    """The Sankey's nodes stacked in each column in their order (stages lowest first),
    each centred in its share of the column, so that a large node never runs off the
    plot (fixed, evenly spaced centres do)."""
    sankey = figure.data[0]
    xs, count = list(sankey.node.x or []), len(sankey.node.label or [])
    if not xs or len(xs) != count:
        return figure
    inflow, outflow = [0.0] * count, [0.0] * count
    for source, target, value in zip(sankey.link.source, sankey.link.target, sankey.link.value, strict=True):
        outflow[source] += value
        inflow[target] += value
    size = [max(a, b) for a, b in zip(inflow, outflow, strict=True)]
    columns: dict[float, list[int]] = {}
    for k, x in enumerate(xs):
        columns.setdefault(x, []).append(k)
    ys = list(sankey.node.y or [0.5] * count)
    for nodes in columns.values():
        nodes.sort(key=lambda k: ys[k])
        total = sum(size[k] for k in nodes) or 1
        offset = 0.0
        for k in nodes:
            ys[k] = low + (high - low) * (offset + size[k] / 2) / total
            offset += size[k]
    sankey.node.y = ys
    return figure


# ---------------------------------------------------------------------------------------------
# Every kind

#: Numeric leaves of a run's parameters that describe the data, not the fit.
NOT_PARAMETERS = frozenset({"customers", "log_likelihood", "repeat_buyers", "seed", "threads"})


def flatten(value, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of nested dicts, by dotted path (lists and texts left out)."""
    out: dict[str, float] = {}
    if isinstance(value, Mapping):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif (number := _number(value)) is not None and math.isfinite(number):
        out[prefix] = number
    return out


def parameter_history(runs: Sequence[Mapping]) -> go.Figure | None:
    """Small multiples of the fitted parameters (and the key metric) that changed across
    ``runs`` (each ``{"label", "parameters", "key_metric"}``, oldest first); None before
    two runs with parameters or when nothing changed."""
    rows = [
        (
            run["label"],
            {
                **{
                    k: v
                    for k, v in flatten(run.get("parameters") or {}).items()
                    if k.rsplit(".", 1)[-1] not in NOT_PARAMETERS
                },
                **_key(run),
            },
        )
        for run in runs
    ]
    rows = [(label, values) for label, values in rows if values]
    if len(rows) < 2:
        return None
    names = sorted({name for _label, values in rows for name in values})
    changing = [n for n in names if len({values.get(n) for _l, values in rows if n in values}) > 1]
    if "key_metric" in changing:  # the key metric first
        changing.remove("key_metric")
        changing.insert(0, "key_metric")
    changing = changing[:HISTORY_PARAMETERS]
    if not changing:
        return None
    columns = min(HISTORY_COLUMNS, len(changing))
    lines = math.ceil(len(changing) / columns)
    titles = [_("key metric") if n == "key_metric" else n for n in changing]
    figure = make_subplots(rows=lines, cols=columns, subplot_titles=titles, vertical_spacing=0.3 / lines)
    labels = [label for label, _values in rows]
    for k, name in enumerate(changing):
        figure.add_trace(
            go.Scatter(
                x=labels,
                y=[values.get(name) for _label, values in rows],
                mode="lines+markers",
                line={"color": ACCENT if name == "key_metric" else COLOR},
                hovertemplate="%{x}: %{y:.4g}<extra></extra>",
            ),
            row=k // columns + 1,
            col=k % columns + 1,
        )
    figure.update_xaxes(type="category", tickangle=0, nticks=6)
    figure.update_annotations(font_size=12)
    return _layout(figure, _("Parameter history across runs"), height=80 + 220 * lines)


def _key(run: Mapping) -> dict[str, float]:
    value = _number(run.get("key_metric"))
    return {"key_metric": value} if value is not None and math.isfinite(value) else {}


def run_figures(kind: str, metrics: Mapping, charts: Mapping, numbers=None) -> dict[str, go.Figure]:
    """The figures of one run of a model of ``kind``, by name (absent ones left out)."""
    metrics, charts = metrics or {}, charts or {}
    if kind == ModelKind.CHURN:
        figures = churn_figures(metrics, charts)
    elif kind == ModelKind.RFM:
        figures = rfm_figures(metrics, charts)
    elif kind == ModelKind.CLV:
        figures = clv_figures(metrics, charts, numbers)
    elif kind == ModelKind.AIPL:
        figures = aipl_figures(metrics, charts)
    else:
        figures = {}
    return {name: figure for name, figure in figures.items() if figure is not None}


def headline(kind: str, metrics: Mapping, key_metric: float | None) -> str:
    """A run's key figure in a few words: the churn warning's validation AUC; the people
    an RFM, lifetime value or AIPL run described."""
    metrics = metrics or {}
    if kind == ModelKind.CHURN:
        return f"AUC {key_metric:.3f}" if key_metric is not None else ""
    if kind == ModelKind.RFM and metrics.get("customers") is not None:
        return _("%(n)s customers") % {"n": f"{metrics['customers']:,}"}
    if kind == ModelKind.CLV and metrics.get("customers") is not None:
        return _("%(n)s customers, %(repeat)s repeat buyers") % {
            "n": f"{metrics['customers']:,}",
            "repeat": f"{metrics.get('repeat_buyers') or 0:,}",
        }
    if kind == ModelKind.AIPL and metrics.get("people") is not None:
        return _("%(n)s people with a stage") % {"n": f"{metrics['people']:,}"}
    return ""


def output_numbers(tags: Mapping[str, int]) -> dict[str, pd.Series]:
    """The published numbers of number tags (``{output key: tag id}``), by output key."""
    from tagportal.engine import results

    stamps = results.result_stamps(tags.values())
    keys = {stamps[tag_id][0]: stamps[tag_id][1] for tag_id in tags.values() if tag_id in stamps}
    numbers = results.result_numbers(keys) if keys else {}
    out = {}
    for key, tag_id in tags.items():
        if tag_id in stamps and numbers.get(stamps[tag_id][0]) is not None:
            out[key] = numbers[stamps[tag_id][0]]
    return out
