"""What each kind of model is, for the registry: its configuration (parsed from the
stored parameters), its outputs (the tags it fills) and how it fits and scores a brand's
frames. Pure: frames in, a :class:`Fit` out; no ORM (the registry, :mod:`.services`,
stores runs and writes tags).

Two kinds bring a brand's own model: a **score file** (uploaded, see :mod:`.byom`; no
run fits it) and a **scoring endpoint** (a run posts the people's features to the brand's
URL, :mod:`.scoring_client`). Both fill a number tag ``score`` and a 高 / 中 / 低 tag
``level``, named after the model.

The churn warning's extra features (:class:`ChurnSettings`): the RFM scores and the
brand's published metric tags, each recomputed as of every cut-off; the registry passes
the tags' published definitions in the frames (:data:`TAG_SPECS`), and the fitted model
keeps them (:class:`ChurnArtefact`), so scoring computes the same columns.

Key metrics (what a model's floor and largest drop are measured on): RFM, lifetime
value and AIPL have none (they are descriptive or have no labelled truth at scoring
time) and always publish; the churn warning's is the validation ROC AUC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from django.utils.translation import gettext_lazy as _

from tagportal.core.days import beijing_date
from tagportal.engine.evaluate import TagSpec, evaluate_tags
from tagportal.rules.definitions import tag_references

from . import aipl, churn, clv, rfm
from .choices import AiplStage, ModelKind, RfmSegment

#: 高 / 中 / 低 as value codes.
LEVELS = [
    {"code": "high", "label": "高"},
    {"code": "medium", "label": "中"},
    {"code": "low", "label": "低"},
]
_LEVEL_CODES = {"高": "high", "中": "medium", "低": "low"}
#: The Chinese names of the RFM segments and AIPL stages (tag value labels are data).
SEGMENT_LABELS = {
    RfmSegment.IMPORTANT_VALUE: "重要价值客户",
    RfmSegment.IMPORTANT_DEVELOPMENT: "重要发展客户",
    RfmSegment.IMPORTANT_RETENTION: "重要保持客户",
    RfmSegment.IMPORTANT_WINBACK: "重要挽留客户",
    RfmSegment.GENERAL_VALUE: "一般价值客户",
    RfmSegment.GENERAL_DEVELOPMENT: "一般发展客户",
    RfmSegment.GENERAL_RETENTION: "一般保持客户",
    RfmSegment.GENERAL_WINBACK: "一般挽留客户",
}
STAGE_LABELS = {
    AiplStage.AWARENESS: "认知",
    AiplStage.INTEREST: "兴趣",
    AiplStage.PURCHASE: "购买",
    AiplStage.LOYALTY: "忠诚",
}
#: Buckets of a 1–5 score.
SCORE_BUCKETS = [{"code": f"s{n}", "label": str(n), "min": n, "max": n + 1} for n in range(1, 6)]


class ParametersRefused(ValueError):
    """Stored parameters the kind's configuration refuses."""


@dataclass(frozen=True)
class Output:
    """One tag a model fills: its key, names and value type (values: enum codes or
    number buckets)."""

    key: str
    name: str
    name_en: str
    value_type: str
    values: list = field(default_factory=list)
    unit: str = ""


@dataclass
class Fit:
    """What fitting and scoring gives: ``scores`` indexed by OneID with one column per
    output key; plain JSON-able dicts for the run; the fitted object to store."""

    scores: pd.DataFrame
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    key_metric: float | None = None
    charts: dict[str, Any] = field(default_factory=dict)
    window: dict[str, Any] = field(default_factory=dict)
    features: list[str] = field(default_factory=list)
    artefact: Any = None
    #: False when the kind's own guard refuses publishing (``hold_reason`` says why).
    publishable: bool = True
    hold_reason: str = ""


@dataclass(frozen=True)
class Kind:
    key: str
    parse: Callable[[Mapping], Any]
    outputs: tuple[Output, ...]
    fit: Callable[[Mapping, Any, dt.datetime], Fit]
    key_metric: str | None = None
    #: Scores fresh data with a published run's fitted artefact (``frames, artefact,
    #: as_of`` → scores by output key); ``None``: scoring is fitting again (the kind is
    #: cheap and has nothing learnt to keep).
    score: Callable[[Mapping, Any, dt.datetime], pd.DataFrame] | None = None
    #: False: the kind is not fitted by a run (its scores come another way, e.g. a score file).
    runnable: bool = True
    #: False: the kind is not scored again after each computation of the brand's tags
    #: (its runs post to another system, or it has no run at all).
    scored_after_computation: bool = True
    #: True: its output tags are named after the model (``<model name>·<output name>``).
    names_from_model: bool = False
    #: The engine fields the kind reads, written as lineage's data fields map to them
    #: (``orders.amount``; ``<source>.time`` is the moment of each row): lineage draws
    #: the data fields feeding them as the model's inputs.
    reads: tuple[str, ...] = ()
    #: The kind's fit reads the brand's published number tags: the registry passes their
    #: specs (as published) in the frames under :data:`TAG_SPECS`.
    reads_tags: bool = False

    def config(self, parameters) -> Any:
        """The configuration of stored parameters, or :class:`ParametersRefused`."""
        if not isinstance(parameters, Mapping):
            raise ParametersRefused(_("The parameters must be a JSON object."))
        try:
            return self.parse(dict(parameters))
        except ParametersRefused:
            raise
        except (TypeError, ValueError) as exc:
            raise ParametersRefused(str(exc)) from exc


def _from_dict(cls):
    def parse(params):
        return cls.from_dict(params)

    return parse


# ---------------------------------------------------------------------------------------------
# RFM


def _fit_rfm(frames, config: rfm.RfmConfig, as_of) -> Fit:
    result = rfm.compute_rfm(frames.get("orders"), config, as_of)
    scores = result.scores[["r", "f", "m"]].astype("float64")
    scores["segment"] = result.scores["segment"].astype(str)
    day = beijing_date(as_of)
    return Fit(
        scores=scores,
        parameters=config.to_dict(),
        metrics={k: v for k, v in result.summary.items() if k != "config"},
        charts={"segments": result.summary.get("segments", {})},
        window={
            "start": (day - dt.timedelta(days=config.window_days - 1)).isoformat(),
            "end": day.isoformat(),
        },
        features=["recency_days", "frequency", "monetary"],
        artefact={"config": config.to_dict(), "cut_points": result.summary.get("cut_points")},
    )


RFM = Kind(
    key=ModelKind.RFM,
    parse=_from_dict(rfm.RfmConfig),
    outputs=(
        Output("r", "R 最近购买分", "RFM recency score", "number", SCORE_BUCKETS),
        Output("f", "F 购买频次分", "RFM frequency score", "number", SCORE_BUCKETS),
        Output("m", "M 消费金额分", "RFM monetary score", "number", SCORE_BUCKETS),
        Output(
            "segment",
            "RFM 客户分层",
            "RFM segment",
            "enum",
            [{"code": str(code), "label": SEGMENT_LABELS[code]} for code in RfmSegment],
        ),
    ),
    fit=_fit_rfm,
    reads=("orders.time", "orders.amount"),
)


# ---------------------------------------------------------------------------------------------
# Lifetime value and purchase intent


@dataclass(frozen=True)
class ClvConfig:
    """A brand's lifetime value parameters: orders of the last ``window_days`` days are
    the calibration period; CLV over ``clv_months`` with ``monthly_discount``; purchase
    intent over ``intent_days``, 高 from ``high``, 低 below ``low``."""

    window_days: int = 730
    clv_months: int = 12
    monthly_discount: float = 0.01
    intent_days: int = 30
    high: float = 0.5
    low: float = 0.2

    def __post_init__(self):
        for name in ("window_days", "clv_months", "intent_days"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a whole number ≥ 1, got {value!r}")
        for name in ("monthly_discount", "high", "low"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or not np.isfinite(value):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if self.monthly_discount <= -1:
            raise ValueError("monthly_discount must be above -1")
        if not 0 <= self.low <= self.high <= 1:
            raise ValueError("the purchase intent thresholds need 0 ≤ low ≤ high ≤ 1")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> ClvConfig:
        unknown = sorted(set(params) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown lifetime value parameters: {', '.join(unknown)}")
        return cls(**params)


def _fit_clv(frames, config: ClvConfig, as_of) -> Fit:
    orders = frames.get("orders")
    day = beijing_date(as_of)
    start = day - dt.timedelta(days=config.window_days - 1)
    if orders is None or orders.empty:
        raise clv.ClvError(_("The brand has no orders to fit."))
    times = pd.to_datetime(orders["time"], utc=True)
    orders = orders[times >= pd.Timestamp(start.isoformat(), tz="Asia/Shanghai")]
    summary = clv.summary_from_orders(orders[["oneid", "time", "amount"]].dropna(subset=["oneid"]), day)
    bgnbd = clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    gamma_gamma = clv.fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    out = clv.score(
        summary,
        bgnbd,
        gamma_gamma,
        clv_months=config.clv_months,
        monthly_discount=config.monthly_discount,
        intent_days=config.intent_days,
        high=config.high,
        low=config.low,
    )
    out.index = pd.Index(out.index.astype("int64"), name="oneid")
    out["purchase_intent_level"] = out["purchase_intent_level"].map(_LEVEL_CODES)
    customers = len(summary)
    return Fit(
        scores=out[["p_alive", "purchase_intent", "purchase_intent_level", "expected_order_value", "clv"]],
        parameters={"bgnbd": bgnbd.to_dict(), "gamma_gamma": gamma_gamma.to_dict(), **config.to_dict()},
        metrics={
            "customers": customers,
            "repeat_buyers": int((summary["frequency"] > 0).sum()),
            "bgnbd_log_likelihood": bgnbd.log_likelihood,
            "bgnbd_log_likelihood_per_customer": bgnbd.log_likelihood / customers if customers else None,
            "purchase_intent_levels": {
                k: int(v) for k, v in out["purchase_intent_level"].value_counts().items()
            },
        },
        window={"start": start.isoformat(), "end": day.isoformat()},
        features=["frequency", "recency", "T", "monetary_value"],
        artefact={"bgnbd": bgnbd, "gamma_gamma": gamma_gamma, "config": config.to_dict()},
    )


CLV = Kind(
    key=ModelKind.CLV,
    parse=_from_dict(ClvConfig),
    outputs=(
        Output("p_alive", "活跃概率", "Probability alive", "number"),
        Output("purchase_intent", "购买意向概率", "Purchase intent (probability)", "number"),
        Output("purchase_intent_level", "购买意向", "Purchase intent", "enum", LEVELS),
        Output("expected_order_value", "预期客单价", "Expected order value", "number", unit="元"),
        Output("clv", "客户终身价值", "Customer lifetime value", "number", unit="元"),
    ),
    fit=_fit_clv,
    reads=("orders.time", "orders.amount"),
)


# ---------------------------------------------------------------------------------------------
# AIPL

#: Weeks of stage flows drawn for a run (the Sankey).
FLOW_WEEKS = 4


def _fit_aipl(frames, config: aipl.AiplConfig, as_of) -> Fit:
    staged = aipl.stages(frames, config, as_of)
    day = beijing_date(as_of)
    weeks = [day - dt.timedelta(days=7 * k) for k in range(FLOW_WEEKS, -1, -1)]
    flows = aipl.stage_flows(frames, config, weeks)
    counts = staged.astype(str).value_counts()
    return Fit(
        scores=pd.DataFrame({"aipl_stage": staged.astype(str)}),
        parameters=config.to_dict(),
        metrics={"people": len(staged), "stages": {s: int(counts.get(s, 0)) for s in AiplStage.values}},
        charts={"flows": flows.to_dict("records")},
        window={"start": weeks[0].isoformat(), "end": day.isoformat()},
        features=["events", "orders"],
        artefact={"config": config.to_dict()},
    )


AIPL = Kind(
    key=ModelKind.AIPL,
    parse=_from_dict(aipl.AiplConfig),
    outputs=(
        Output(
            "aipl_stage",
            "AIPL 阶段",
            "AIPL stage",
            "enum",
            [{"code": str(code), "label": STAGE_LABELS[code]} for code in AiplStage],
        ),
    ),
    fit=_fit_aipl,
    reads=("events.time", "events.type", "orders.time"),
)


# ---------------------------------------------------------------------------------------------
# Churn


#: At most this many of the brand's published metric tags feed a churn model by default.
MAX_TAG_FEATURES = 10
#: The RFM scores fed to a churn model, as extra feature columns (the RFM module's defaults).
RFM_FEATURES = {"r": "rfm_r", "f": "rfm_f", "m": "rfm_m"}
TAG_FEATURE_PREFIX = "tag:"
#: The frames key under which the registry passes the brand's published number tags
#: (:class:`~tagportal.engine.evaluate.TagSpec`, as their published versions define them).
TAG_SPECS = "tag_specs"


@dataclass(frozen=True)
class ChurnSettings:
    """The churn warning's parameters: the churn module's (:class:`.churn.ChurnConfig`)
    and which extra features it reads, each computed as of every cut-off (nothing after
    it): ``rfm_features`` — the R, F and M scores (:func:`.rfm.compute_rfm`, its default
    window) as ``rfm_r``, ``rfm_f``, ``rfm_m``; ``tag_features`` — tag codes of the brand's
    published number tags computed by the engine from events or orders (metric tags),
    as ``tag:<code>``; ``None``: all of them up to :data:`MAX_TAG_FEATURES`, by code."""

    churn: churn.ChurnConfig
    rfm_features: bool = True
    tag_features: tuple[str, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        tags = None if self.tag_features is None else list(self.tag_features)
        return {**self.churn.as_dict(), "rfm_features": self.rfm_features, "tag_features": tags}


def _parse_churn(params) -> ChurnSettings:
    params = dict(params)
    rfm_features = params.pop("rfm_features", True)
    tag_features = params.pop("tag_features", None)
    unknown = sorted(set(params) - {f.name for f in dataclasses.fields(churn.ChurnConfig)})
    if unknown:
        raise ParametersRefused(_("Unknown churn parameters: %(names)s.") % {"names": ", ".join(unknown)})
    if not isinstance(rfm_features, bool):
        raise ParametersRefused(_("rfm_features must be true or false."))
    if tag_features is not None:
        if not isinstance(tag_features, list | tuple) or not all(
            isinstance(code, str) and code for code in tag_features
        ):
            raise ParametersRefused(
                _("tag_features must be a list of tag codes, or null for the brand's published metric tags.")
            )
        tag_features = tuple(dict.fromkeys(tag_features))
    return ChurnSettings(churn.ChurnConfig(**params), rfm_features, tag_features)


def is_metric_tag(spec: TagSpec) -> bool:
    """A number tag the engine computes from events or orders alone (so it can be
    recomputed as of a past day): a ``metric`` definition over a source, reading no
    profile attribute and no other tag."""
    definition = spec.definition if isinstance(spec.definition, dict) else {}
    metric = definition.get("metric")
    return (
        spec.value_type == "number"
        and definition.get("type") == "metric"
        and isinstance(metric, dict)
        and metric.get("source") in ("events", "orders")
        and "attribute" not in metric
        and not tag_references(definition)
    )


def churn_tag_specs(available, settings: ChurnSettings) -> list[TagSpec]:
    """The metric tags a churn model reads, among the brand's ``available`` published
    number tags: those named by ``tag_features`` (each must be such a tag), or by default
    the first :data:`MAX_TAG_FEATURES` by code."""
    specs = [s if isinstance(s, TagSpec) else TagSpec(*s) for s in available or ()]
    usable = {spec.code: spec for spec in specs if is_metric_tag(spec)}
    if settings.tag_features is None:
        return [usable[code] for code in sorted(usable)][:MAX_TAG_FEATURES]
    missing = [code for code in settings.tag_features if code not in usable]
    if missing:
        raise churn.ChurnConfigError(
            _(
                "tag_features: %(codes)s are not published number tags of the brand that the engine "
                "computes from events or orders."
            )
            % {"codes": ", ".join(missing)}
        )
    return [usable[code] for code in settings.tag_features]


@dataclass(frozen=True)
class ChurnFeatures:
    """The extra features of a churn model: what they are (kept with the fitted model,
    so that scoring computes the same columns with the same definitions) and how to
    compute them from a brand's frames as of a day (:meth:`for_frames`)."""

    rfm: bool = True
    tags: tuple[TagSpec, ...] = ()

    @property
    def columns(self) -> list[str]:
        return [
            *(RFM_FEATURES.values() if self.rfm else ()),
            *(TAG_FEATURE_PREFIX + s.code for s in self.tags),
        ]

    def for_frames(self, frames) -> churn.ExtraFeatures | None:
        """``extra_features(cutoff)`` for :func:`.churn.train_churn` and
        :meth:`.churn.ChurnModel.score`: each column per OneID from the rows dated up to
        ``cutoff`` only; ``None`` without extra features."""
        if not self.rfm and not self.tags:
            return None
        events, orders = frames.get("events"), frames.get("orders")
        rfm_config = rfm.RfmConfig()

        def extra(cutoff: dt.date) -> pd.DataFrame:
            parts = []
            if self.rfm:
                scores = rfm.compute_rfm(orders, rfm_config, cutoff).scores
                parts.append(scores[list(RFM_FEATURES)].astype("float64").rename(columns=RFM_FEATURES))
            if self.tags:
                result = evaluate_tags(self.tags, None, events, orders, cutoff)
                if result.errors:
                    code, error = next(iter(result.errors.items()))
                    raise churn.ChurnDataError(
                        _("The tag %(code)s cannot be computed as of %(day)s: %(error)s")
                        % {"code": code, "day": cutoff.isoformat(), "error": error}
                    )
                parts.append(
                    pd.DataFrame(
                        {
                            TAG_FEATURE_PREFIX + s.code: result.values[s.code].astype("float64")
                            for s in self.tags
                        },
                        index=result.population,
                    )
                )
            out = pd.concat(parts, axis=1) if len(parts) > 1 else parts[0]
            out.index = pd.Index(out.index.astype("int64"), name="oneid")
            return out[self.columns]

        return extra


@dataclass
class ChurnArtefact:
    """What a churn run keeps: the fitted model and its extra features."""

    model: churn.ChurnModel
    features: ChurnFeatures

    def score(self, frames, as_of) -> pd.DataFrame:
        """``probability`` and ``bucket`` of the people eligible at ``as_of``."""
        extra = self.features.for_frames(frames)
        return self.model.score(frames.get("events"), frames.get("orders"), as_of, extra)


def _fit_churn(frames, settings: ChurnSettings, as_of) -> Fit:
    config = settings.churn
    features = ChurnFeatures(settings.rfm_features, tuple(churn_tag_specs(frames.get(TAG_SPECS), settings)))
    run = churn.train_churn(
        frames.get("events"), frames.get("orders"), as_of, config, extra_features=features.for_frames(frames)
    )
    report = run.report
    validation = report.get("validation") or {}
    scores = _churn_outputs(run.scores)
    cutoffs = report.get("cutoffs") or {}
    return Fit(
        scores=scores,
        parameters={
            "config": settings.as_dict(),
            "chosen": report.get("chosen"),
            "calibration": report.get("calibration"),
            "tag_features": [spec.code for spec in features.tags],
        },
        metrics={k: v for k, v in report.items() if k not in ("config", "features")},
        key_metric=validation.get("auc"),
        charts={
            "calibration_curve": validation.get("calibration_curve"),
            "roc_curve": validation.get("roc_curve"),
            "permutation_importances": report.get("permutation_importances"),
            "candidates": report.get("candidates"),
        },
        window=cutoffs if isinstance(cutoffs, dict) else {"cutoffs": cutoffs},
        features=list(report.get("features") or run.model.features),
        artefact=ChurnArtefact(run.model, features),
        publishable=bool(report.get("publishable", True)),
        hold_reason=""
        if report.get("publishable", True)
        else _("The validation AUC %(auc)s is below the run's own floor %(floor)s.")
        % {"auc": validation.get("auc"), "floor": report.get("auc_floor")},
    )


def _churn_outputs(scores: pd.DataFrame) -> pd.DataFrame:
    """The churn module's ``probability`` and ``bucket`` as the model's outputs."""
    return pd.DataFrame(
        {"churn_probability": scores["probability"], "churn_level": scores["bucket"].astype(str)}
    )


def _score_churn(frames, artefact, as_of) -> pd.DataFrame:
    if isinstance(artefact, churn.ChurnModel):  # fitted before the extra features were kept with it
        return _churn_outputs(artefact.score(frames.get("events"), frames.get("orders"), as_of))
    return _churn_outputs(artefact.score(frames, as_of))


CHURN = Kind(
    key=ModelKind.CHURN,
    parse=_parse_churn,
    score=_score_churn,
    outputs=(
        Output("churn_probability", "流失概率", "Churn probability", "number"),
        Output("churn_level", "流失预警", "Churn warning", "enum", LEVELS),
    ),
    fit=_fit_churn,
    key_metric="auc",
    reads=("events.time", "events.type", "orders.time", "orders.amount"),
    reads_tags=True,
)

# ---------------------------------------------------------------------------------------------
# Bring your own model: a score file, a scoring endpoint

#: The features a scoring endpoint may ask for: what TagPortal computes of a person's
#: activity (the churn warning's base features, :func:`.churn.churn_features`), never an
#: identity or a profile attribute.
ENDPOINT_FEATURES = tuple(churn.BASE_FEATURES)
#: The largest batch, the longest timeout (s) and the most retries of a scoring endpoint.
MAX_BATCH_SIZE = 1000
MAX_TIMEOUT = 60.0
MAX_RETRIES = 5
#: The outputs of both kinds: the score and its 高 / 中 / 低 level.
BYOM_OUTPUTS = (
    Output("score", "评分", "Score", "number"),
    Output("level", "等级", "Level", "enum", LEVELS),
)


def _number(name: str, value, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ParametersRefused(_("%(name)s must be a finite number.") % {"name": name})
    return float(value)


def _whole(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ParametersRefused(
            _("%(name)s must be a whole number from %(low)s to %(high)s.")
            % {"name": name, "low": low, "high": high}
        )
    return value


def _unknown(params, known, what: str) -> None:
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ParametersRefused(
            _("Unknown %(what)s parameters: %(names)s.") % {"what": what, "names": ", ".join(unknown)}
        )


@dataclass(frozen=True)
class ScoreFileConfig:
    """A score file model: 高 from ``high``, 中 from ``medium``, 低 below; the scores must
    lie in ``score_min`` .. ``score_max`` when those are given (a row outside is an error)."""

    high: float = 0.7
    medium: float = 0.3
    score_min: float | None = None
    score_max: float | None = None

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> ScoreFileConfig:
        _unknown(params, [f.name for f in dataclasses.fields(cls)], _("score file"))
        return cls(**_levels(params), **_range(params))

    @property
    def score_range(self) -> tuple[float, float] | None:
        return None if self.score_min is None else (self.score_min, self.score_max)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _levels(params) -> dict[str, float]:
    high = _number("high", params.get("high", 0.7))
    medium = _number("medium", params.get("medium", 0.3))
    if medium > high:
        raise ParametersRefused(_("The level thresholds need medium ≤ high."))
    return {"high": high, "medium": medium}


def _range(params) -> dict[str, float | None]:
    low = _number("score_min", params.get("score_min"), optional=True)
    high = _number("score_max", params.get("score_max"), optional=True)
    if (low is None) != (high is None):
        raise ParametersRefused(_("Give both score_min and score_max, or neither."))
    if low is not None and low > high:
        raise ParametersRefused(_("score_min must not be above score_max."))
    return {"score_min": low, "score_max": high}


@dataclass(frozen=True)
class EndpointConfig:
    """A scoring endpoint model: where to post (``url``), which ``features`` (names from
    :data:`ENDPOINT_FEATURES`), of the people active in the last ``active_days`` days, in
    batches of ``batch_size`` (≤ :data:`MAX_BATCH_SIZE`), ``timeout`` seconds per request,
    ``retries`` more attempts of a failing batch; the levels as a score file's.

    ``secret`` and ``model_key`` are not parameters: the registry sets them for a run
    (the secret is stored encrypted, never with the parameters)."""

    url: str
    features: tuple[str, ...]
    batch_size: int = 500
    timeout: float = 10.0
    retries: int = 2
    active_days: int = 365
    high: float = 0.7
    medium: float = 0.3
    secret: str = field(default="", repr=False, compare=False)
    model_key: str = field(default="", compare=False)

    PARAMETERS = ("url", "features", "batch_size", "timeout", "retries", "active_days", "high", "medium")

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> EndpointConfig:
        from .endpoints import EndpointRefused, check_syntax

        _unknown(params, cls.PARAMETERS, _("scoring endpoint"))
        url = params.get("url")
        try:
            check_syntax(url)
        except EndpointRefused as exc:
            raise ParametersRefused(str(exc)) from exc
        features = params.get("features")
        if not isinstance(features, list) or not features or not all(isinstance(f, str) for f in features):
            raise ParametersRefused(
                _("features must be a list of feature names, from: %(known)s.")
                % {"known": ", ".join(ENDPOINT_FEATURES)}
            )
        unknown = [f for f in features if f not in ENDPOINT_FEATURES]
        if unknown:
            raise ParametersRefused(
                _("Features TagPortal does not compute: %(names)s (known: %(known)s).")
                % {"names": ", ".join(unknown), "known": ", ".join(ENDPOINT_FEATURES)}
            )
        if len(set(features)) != len(features):
            raise ParametersRefused(_("features names a feature twice."))
        timeout = _number("timeout", params.get("timeout", 10.0))
        if not 0 < timeout <= MAX_TIMEOUT:
            raise ParametersRefused(
                _("timeout must be above 0 and at most %(max)s seconds.") % {"max": f"{MAX_TIMEOUT:g}"}
            )
        return cls(
            url=url.strip(),
            features=tuple(features),
            batch_size=_whole("batch_size", params.get("batch_size", 500), 1, MAX_BATCH_SIZE),
            timeout=timeout,
            retries=_whole("retries", params.get("retries", 2), 0, MAX_RETRIES),
            active_days=_whole("active_days", params.get("active_days", 365), 1, 3660),
            **_levels(params),
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.PARAMETERS} | {"features": list(self.features)}


def level_outputs(scores: pd.Series, high: float, medium: float) -> pd.DataFrame:
    """A score Series (index ``oneid``) as the outputs of a bring-your-own model."""
    from .byom import score_buckets

    return pd.DataFrame({"score": scores.astype("float64"), "level": score_buckets(scores, high, medium)})


def _fit_score_file(frames, config: ScoreFileConfig, as_of) -> Fit:
    raise ParametersRefused(_("A score file model is filled by uploading a score file, not by a run."))


def endpoint_features(frames, config: EndpointConfig, as_of) -> pd.DataFrame:
    """The features a scoring endpoint asked for, of the people with activity in the last
    ``active_days`` days (index ``oneid``)."""
    churn_config = churn.ChurnConfig(eligible_days=config.active_days)
    table = churn.churn_features(
        frames.get("events"), frames.get("orders"), beijing_date(as_of), churn_config, event_types=[]
    )
    table.index = table.index.astype("int64")
    return table[list(config.features)]


def _fit_endpoint(frames, config: EndpointConfig, as_of) -> Fit:
    from .byom import score_over_http

    features = endpoint_features(frames, config, as_of)
    result = score_over_http(
        config.url,
        config.secret,
        features,
        model_key=config.model_key,
        batch_size=config.batch_size,
        timeout=config.timeout,
        retries=config.retries,
    )
    report = result.report
    day = beijing_date(as_of)
    hold = ""
    if not report["complete"]:
        hold = _(
            "The scoring endpoint scored %(scored)s of %(people)s people (%(failed)s failed batches, "
            "%(unscored)s people without a score); nothing is written."
        ) % {
            "scored": report["scored"],
            "people": report["people"],
            "failed": report["failed_batch_count"],
            "unscored": report["unscored"],
        }
    return Fit(
        scores=level_outputs(result.scores, config.high, config.medium),
        parameters=config.to_dict(),
        metrics={"scoring": report},
        window={
            "start": (day - dt.timedelta(days=config.active_days - 1)).isoformat(),
            "end": day.isoformat(),
        },
        features=list(config.features),
        artefact={"config": config.to_dict()},
        publishable=not hold,
        hold_reason=hold,
    )


SCORE_FILE = Kind(
    key=ModelKind.SCORE_FILE,
    parse=_from_dict(ScoreFileConfig),
    outputs=BYOM_OUTPUTS,
    fit=_fit_score_file,
    runnable=False,
    scored_after_computation=False,
    names_from_model=True,
)

ENDPOINT = Kind(
    key=ModelKind.ENDPOINT,
    parse=_from_dict(EndpointConfig),
    outputs=BYOM_OUTPUTS,
    fit=_fit_endpoint,
    scored_after_computation=False,
    names_from_model=True,
    reads=("events.time", "events.type", "orders.time", "orders.amount"),  # the activity features
)

KINDS: dict[str, Kind] = {kind.key: kind for kind in (RFM, CLV, CHURN, AIPL, SCORE_FILE, ENDPOINT)}


def kind_of(key: str) -> Kind:
    try:
        return KINDS[key]
    except KeyError:
        raise ParametersRefused(_("Unknown model kind “%(kind)s”.") % {"kind": key}) from None
