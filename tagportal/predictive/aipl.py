"""AIPL stages (认知 Awareness, 兴趣 Interest, 购买 Purchase, 忠诚 Loyalty) of a brand's
people, the weekly flows between stages, and their Sankey diagram.

Conventions
===========

- **Input**: ``frames`` as :func:`tagportal.profiles.loaders.load_frames` gives them:
  ``events`` (``oneid``, ``time`` UTC, ``type``) and ``orders`` (``oneid``, ``time``);
  either may be absent or empty. Rows without a OneID or a time are ignored.
- **Days are Beijing days**, as in the tag engine and :mod:`.rfm`: a window of N days is
  the N Beijing calendar days ending on ``as_of``'s Beijing date, inclusive, and
  anything dated after that date is ignored.
- **Rules** (:class:`AiplConfig`, per brand), each with its own window:
  Awareness: an event of an exposure type (``awareness_events``) in the last
  ``awareness_days``; Interest: an event of an engagement type (``interest_events``) in
  the last ``interest_days``; Purchase: an order in the last ``purchase_days``; Loyalty:
  orders on at least ``loyalty_min_purchases`` distinct Beijing days in the last
  ``loyalty_days`` (repeat purchases; ``None`` turns this rule off), or an event of a
  member-level type (``loyalty_events``, e.g. a tier upgrade) in the last
  ``loyalty_days``, or a member level among ``loyalty_member_levels`` in the profile
  attribute ``member_level_attribute`` (e.g. 金卡, 铂金卡). Profiles keep only the current
  level, with no history: it counts at every date looked at, the flows' earlier weeks
  included.
- **A person's stage is the highest reached** (Loyalty > Purchase > Interest >
  Awareness), whatever the lower rules say: a loyal buyer with no recent exposure is
  loyal. People with nothing in any window have no stage (absent from :func:`stages`;
  ``"none"`` in the flows).
- **Flows** (:func:`stage_flows`) between consecutive ``weeks`` (as-of dates): the people
  counted are those with a stage at one of the weeks at least; each is counted once
  per pair of weeks, ``"none"`` where they have no stage, so the flows out of a week add
  up to the people counted, as do the flows into the next week.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from tagportal.engine.frames import EPOCH, beijing_day

from .choices import NO_STAGE, NO_STAGE_LABEL, AiplStage
from .rfm import dated_rows, distinct_days, person_codes

#: Stages lowest first, after "no stage" (level 0): a stage's level is its position here.
LEVELS = (NO_STAGE, *AiplStage.values)
#: The columns of :func:`stage_flows`.
FLOW_COLUMNS = ("from_week", "to_week", "from_stage", "to_stage", "people")
_COLOURS = {
    NO_STAGE: "#bdbdbd",
    AiplStage.AWARENESS: "#9ecae1",
    AiplStage.INTEREST: "#4292c6",
    AiplStage.PURCHASE: "#fd8d3c",
    AiplStage.LOYALTY: "#d94801",
}


@dataclass(frozen=True)
class AiplConfig:
    """A brand's AIPL rules (JSON-able through :meth:`to_dict` / :meth:`from_dict`).
    The defaults use the event types of the demo brands."""

    awareness_events: tuple[str, ...] = ("page_view", "content_view", "live_view", "coupon_received")
    awareness_days: int = 30
    interest_events: tuple[str, ...] = (
        "product_view", "search", "add_to_cart", "content_like", "content_share", "consultation",
        "appointment", "sample_request", "store_visit", "wecom_chat",
    )  # fmt: skip
    interest_days: int = 30
    purchase_days: int = 90
    loyalty_days: int = 365
    loyalty_min_purchases: int | None = 2
    loyalty_events: tuple[str, ...] = ()
    loyalty_member_levels: tuple[str, ...] = ()
    member_level_attribute: str = "member_level"

    def __post_init__(self):
        for name in ("awareness_days", "interest_days", "purchase_days", "loyalty_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
        minimum = self.loyalty_min_purchases
        if minimum is not None and (not isinstance(minimum, int) or isinstance(minimum, bool) or minimum < 2):
            raise ValueError(f"loyalty_min_purchases must be a whole number ≥ 2 or null, got {minimum!r}")
        for name in ("awareness_events", "interest_events", "loyalty_events", "loyalty_member_levels"):
            types = getattr(self, name)
            if isinstance(types, str) or not isinstance(types, list | tuple):
                raise ValueError(f"{name} must be a list of names, got {types!r}")
            if not all(isinstance(t, str) and t for t in types):
                raise ValueError(f"{name} must hold non-empty names, got {list(types)!r}")
            object.__setattr__(self, name, tuple(types))
        if not isinstance(self.member_level_attribute, str) or not self.member_level_attribute:
            raise ValueError(
                f"member_level_attribute must be an attribute name, got {self.member_level_attribute!r}"
            )
        if minimum is None and not self.loyalty_events and not self.loyalty_member_levels:
            raise ValueError(
                "loyalty needs a rule: loyalty_min_purchases, loyalty_events or loyalty_member_levels"
            )

    def to_dict(self) -> dict[str, Any]:
        return {key: list(v) if isinstance(v, tuple) else v for key, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> AiplConfig:
        """The configuration of stored parameters; unknown keys are refused (ValueError)."""
        unknown = sorted(set(params) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown AIPL parameters: {', '.join(unknown)}")
        return cls(**params)


def stages(frames: dict[str, pd.DataFrame], config: AiplConfig, as_of: dt.datetime | dt.date) -> pd.Series:
    """The AIPL stage of each person with one (module docstring): a Series named
    ``aipl_stage``, indexed by ``oneid`` (ascending), of an ordered categorical of
    :class:`AiplStage` values."""
    activity = _Activity(frames, config)
    levels = activity.levels(beijing_day(as_of))
    staged = levels > 0
    values = pd.Categorical.from_codes(levels[staged] - 1, categories=AiplStage.values, ordered=True)
    return pd.Series(values, index=pd.Index(activity.people[staged], name="oneid"), name="aipl_stage")


def stage_flows(
    frames: dict[str, pd.DataFrame], config: AiplConfig, weeks: Sequence[dt.date | dt.datetime]
) -> pd.DataFrame:
    """How many people moved from each stage to each between consecutive ``weeks``
    (as-of dates or moments, strictly increasing Beijing dates, at least two).

    One row per pair of weeks and (from, to) stages with people, columns
    :data:`FLOW_COLUMNS`: the weeks as ISO Beijing dates, the stages as
    :class:`AiplStage` values or ``"none"``, ``people`` an int. ``flows.to_dict("records")``
    is JSON-able."""
    days = [beijing_day(week) for week in weeks]
    if len(days) < 2:
        raise ValueError("stage flows need at least two weeks")
    if any(a >= b for a, b in itertools.pairwise(days)):
        raise ValueError("the weeks must be strictly increasing Beijing dates")
    activity = _Activity(frames, config)
    levels = [activity.levels(day) for day in days]
    counted = np.logical_or.reduce([lv > 0 for lv in levels])
    size = len(LEVELS)
    rows = []
    for k in range(len(days) - 1):
        pairs = levels[k][counted].astype("int64") * size + levels[k + 1][counted]
        for pair, people in enumerate(np.bincount(pairs, minlength=size * size)):
            if people:
                rows.append(
                    (_iso(days[k]), _iso(days[k + 1]), LEVELS[pair // size], LEVELS[pair % size], people)
                )
    flows = pd.DataFrame(rows, columns=list(FLOW_COLUMNS))
    return flows.astype({"people": "int64"})


def sankey_figure(flows: pd.DataFrame) -> go.Figure:
    """A Plotly Sankey of :func:`stage_flows`: one column of nodes per week (the week's
    date above it), a node per stage present, labelled with the stage's label in the
    active language (the week in the node's hover text); a link per flow, except people
    without a stage in both weeks. The figure only: the page supplies plotly.js."""
    flows = flows[~((flows["from_stage"] == NO_STAGE) & (flows["to_stage"] == NO_STAGE))]
    flows = flows[flows["people"] > 0]
    weeks = sorted(set(flows["from_week"]) | set(flows["to_week"]))
    column = {week: k for k, week in enumerate(weeks)}
    sources = list(zip(flows["from_week"], flows["from_stage"], strict=True))
    targets = list(zip(flows["to_week"], flows["to_stage"], strict=True))
    ordered = sorted({*sources, *targets}, key=lambda node: (column[node[0]], LEVELS.index(node[1])))
    nodes = {node: k for k, node in enumerate(ordered)}
    labels = {NO_STAGE: NO_STAGE_LABEL, **{value: label for value, label in AiplStage.choices}}
    last = max(len(weeks) - 1, 1)
    figure = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": [str(labels[stage]) for _, stage in nodes],
                "customdata": [week for week, _ in nodes],
                "hovertemplate": "%{label}<br>%{customdata}<br>%{value}<extra></extra>",
                "color": [_COLOURS[stage] for _, stage in nodes],
                "x": [0.01 + 0.98 * column[week] / last for week, _ in nodes],
                "y": [0.05 + 0.9 * LEVELS.index(stage) / (len(LEVELS) - 1) for _, stage in nodes],
                "pad": 12,
            },
            link={
                "source": [nodes[node] for node in sources],
                "target": [nodes[node] for node in targets],
                "value": [int(v) for v in flows["people"]],
                "color": [_COLOURS[stage] + "80" for stage in flows["from_stage"]],
            },
        )
    )
    for week in weeks:
        figure.add_annotation(
            x=0.01 + 0.98 * column[week] / last,
            y=1.06,
            xref="paper",
            yref="paper",
            text=week,
            showarrow=False,
        )
    figure.update_layout(margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


class _Activity:
    """The rows the rules look at, read once (OneIDs as positions in ``people``, Beijing
    days), so that several as-of dates cost only their window comparisons."""

    def __init__(self, frames: dict[str, pd.DataFrame], config: AiplConfig):
        self.config = config
        events = frames.get("events")
        ids, days, valid = dated_rows(events, "events")
        kinds = {}
        for name in ("awareness_events", "interest_events", "loyalty_events"):
            types = getattr(config, name)
            if types and valid.any() and "type" in events.columns:
                rows = valid & events["type"].isin(types).to_numpy(dtype=bool, na_value=False)
            else:
                rows = np.zeros(len(ids), dtype=bool)
            kinds[name] = (ids[rows], days[rows])
        order_ids, order_days, valid = dated_rows(frames.get("orders"), "orders")
        kinds["orders"] = (order_ids[valid], order_days[valid])
        members = _loyal_members(frames.get("profiles"), config)
        codes, self.people = person_codes(
            np.concatenate([*(kind_ids for kind_ids, _ in kinds.values()), members])
        )
        self._rows = {}
        start = 0
        for name, (kind_ids, kind_days) in kinds.items():
            self._rows[name] = (codes[start : start + len(kind_ids)], kind_days)
            start += len(kind_ids)
        self._members = codes[start:]

    def levels(self, as_of_day: int) -> np.ndarray:
        """Each person's level on ``as_of_day``: 0 (no stage) to 4 (loyalty)."""
        config, n = self.config, len(self.people)
        level = np.zeros(n, dtype="int8")
        # Lowest first: a higher stage overwrites a lower one.
        for name, days, value in (
            ("awareness_events", config.awareness_days, 1),
            ("interest_events", config.interest_days, 2),
            ("orders", config.purchase_days, 3),
            ("loyalty_events", config.loyalty_days, 4),
        ):
            codes, _ = self._within(name, as_of_day, days)
            level[codes] = value
        if config.loyalty_min_purchases is not None:
            codes, offsets = self._within("orders", as_of_day, config.loyalty_days)
            repeat = distinct_days(codes, offsets, config.loyalty_days, n) >= config.loyalty_min_purchases
            level[repeat] = 4
        level[self._members] = 4
        return level

    def _within(self, name: str, as_of_day: int, days: int) -> tuple[np.ndarray, np.ndarray]:
        """The people codes of the rows of ``name`` in the window, and their days from its start."""
        codes, row_days = self._rows[name]
        first = as_of_day - days + 1
        rows = (row_days >= first) & (row_days <= as_of_day)
        return codes[rows], row_days[rows] - first


def _loyal_members(profiles: pd.DataFrame | None, config: AiplConfig) -> np.ndarray:
    """The OneIDs whose current member level counts as loyal."""
    column = config.member_level_attribute
    if (
        not config.loyalty_member_levels
        or profiles is None
        or column not in profiles
        or "oneid" not in profiles
    ):
        return np.zeros(0, dtype="int64")
    rows = profiles[column].isin(config.loyalty_member_levels).to_numpy(dtype=bool, na_value=False)
    rows = rows & profiles["oneid"].notna().to_numpy()
    return profiles.loc[rows, "oneid"].astype("int64").to_numpy()


def _iso(day: int) -> str:
    return (EPOCH + dt.timedelta(days=day)).isoformat()
