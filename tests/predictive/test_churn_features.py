"""The churn warning's extra features: the RFM scores and the brand's published metric
tags, each computed as of every cut-off (nothing after it), chosen by the parameters,
passed in by the registry (which reads the definitions), kept with the fitted model so
scoring computes the same columns."""

from __future__ import annotations

import datetime as dt
import pickle

import pandas as pd
import pytest

from tagportal.catalog.services import publish_tag
from tagportal.engine.evaluate import TagSpec
from tagportal.predictive import kinds, services
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.kinds import ChurnFeatures, ParametersRefused, churn_tag_specs
from tagportal.profiles import generator

from ..factories import TagFactory
from .test_registry import AS_OF, CHURN, FRAMES, make_model

VISITS = {
    "type": "metric",
    "metric": {
        "agg": "count",
        "source": "events",
        "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
        "window": {"last_days": 30},
    },
}
SPEND = {
    "type": "metric",
    "metric": {"agg": "sum", "source": "orders", "field": "amount", "window": {"last_days": 90}},
}
AGE = {"type": "metric", "metric": {"attribute": "age"}}
CUTOFF = dt.date(2026, 2, 10)


def spec(code, definition, value_type="number"):
    return TagSpec(code, value_type, definition, None)


def test_the_parameters_choose_the_extra_features():
    churn = kinds.CHURN
    settings = churn.config({"rfm_features": False, "tag_features": ["b", "a", "b"], "horizon_days": 7})
    assert settings.rfm_features is False and settings.tag_features == ("b", "a")
    assert settings.churn.horizon_days == 7
    assert churn.config({}).as_dict()["rfm_features"] is True and churn.config({}).tag_features is None
    for params, message in (
        ({"rfm_features": "yes"}, "rfm_features must be true or false"),
        ({"tag_features": "visits"}, "tag_features must be a list of tag codes"),
        ({"tag_features": [1]}, "tag_features must be a list of tag codes"),
        ({"tags": []}, "Unknown churn parameters: tags"),
    ):
        with pytest.raises(ParametersRefused, match=message):
            churn.config(params)


def test_the_default_tags_are_the_metric_tags_over_events_or_orders_up_to_the_cap():
    available = [
        spec("z_spend", SPEND),
        spec("age", AGE),  # a profile attribute: no past value
        spec(
            "vip",
            {"type": "condition", "condition": {"metric": VISITS["metric"], "op": "gte", "value": 1}},
            "boolean",
        ),
        spec("reads_a_tag", {"type": "metric", "metric": {"tag": "z_spend"}}),
        *[spec(f"visits_{n:02d}", VISITS) for n in range(12)],
    ]
    default = churn_tag_specs(available, kinds.CHURN.config({}))
    assert [s.code for s in default] == [f"visits_{n:02d}" for n in range(10)]  # by code, ten at most
    chosen = churn_tag_specs(available, kinds.CHURN.config({"tag_features": ["z_spend", "visits_03"]}))
    assert [s.code for s in chosen] == ["z_spend", "visits_03"]
    with pytest.raises(ValueError, match="age, nope are not published number tags"):
        churn_tag_specs(available, kinds.CHURN.config({"tag_features": ["age", "nope"]}))
    assert churn_tag_specs(None, kinds.CHURN.config({})) == []


def test_the_extra_features_at_a_cutoff_ignore_everything_after_it():
    data = generator.generate(5, 400, 20, end=dt.date(2026, 3, 31))
    features = ChurnFeatures(rfm=True, tags=(spec("visits", VISITS), spec("spend", SPEND)))
    frames = {"events": data["events"], "orders": data["orders"]}
    at = features.for_frames(frames)(CUTOFF)
    assert list(at.columns) == ["rfm_r", "rfm_f", "rfm_m", "tag:visits", "tag:spend"] == features.columns
    assert at.index.name == "oneid" and at["rfm_r"].between(1, 5).any() and (at["tag:spend"] > 0).any()
    assert (at["tag:visits"] > 0).any()

    after = pd.Timestamp("2026-02-11", tz="Asia/Shanghai")
    changed = {}
    for name in ("events", "orders"):
        frame = frames[name].copy()
        later = frame["time"] >= after
        assert later.any()
        if name == "orders":
            frame.loc[later, "amount"] *= 10
        else:
            frame.loc[later, "type"] = "store_visit"
        changed[name] = frame
    pd.testing.assert_frame_equal(features.for_frames(changed)(CUTOFF)[lambda f: f.index.isin(at.index)], at)
    assert not features.for_frames(changed)(dt.date(2026, 3, 31)).equals(
        features.for_frames(frames)(dt.date(2026, 3, 31))
    )
    assert ChurnFeatures(rfm=False).for_frames(frames) is None


def published(world, code, definition, value_type="number"):
    tag = TagFactory(
        brand=world.own_brand, category=world.category, code=code, value_type=value_type, values=[]
    )
    tag.definition = definition
    tag.save()
    publish_tag(tag)
    return tag


def test_the_registry_passes_the_brands_metric_tags_and_scoring_computes_the_same_columns(world):
    visits = published(world, "yimei_visit_visits_30d", VISITS)
    published(world, "yimei_visit_age", AGE)
    assert {s.code for s in services.number_tag_specs(world.own_brand)} >= {visits.code, "yimei_visit_age"}
    model = make_model(world, "churn")
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.PUBLISHED, run.error
    extra = ["rfm_r", "rfm_f", "rfm_m", f"tag:{visits.code}"]
    assert run.features[-4:] == extra and "tag:yimei_visit_age" not in run.features
    assert (
        run.parameters["tag_features"] == [visits.code] and run.parameters["config"]["rfm_features"] is True
    )

    # the tag's definition changes after the fit: scoring keeps the definition it learnt
    visits.definition = SPEND
    visits.save()
    publish_tag(visits)
    scored = services.score_model(model, as_of=AS_OF + dt.timedelta(days=2), frames=FRAMES)
    assert scored.status == ModelRunStatus.PUBLISHED, scored.error
    artefact = pickle.loads(bytes(run.artefact))
    assert artefact.features.columns == extra and artefact.features.tags[0].definition == VISITS
    assert artefact.model.extra_columns == extra


def test_a_tag_feature_the_brand_does_not_have_fails_the_run_with_its_reason(world):
    model = make_model(world, "churn", parameters={**CHURN, "tag_features": ["yimei_visit_nope"]})
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.FAILED
    assert "yimei_visit_nope are not published number tags" in run.error
    quick = make_model(
        world, "churn", name="quick", parameters={**CHURN, "rfm_features": False, "tag_features": []}
    )
    run = services.run_model(quick, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.PUBLISHED and not [
        f for f in run.features if f.startswith(("rfm_", "tag:"))
    ]
