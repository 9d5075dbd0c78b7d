"""Template tags backed by algorithm models: applying a pack links its model-backed tags
(purchase intent, lifetime value, churn risk, RFM segment, AIPL stage) to the brand's
models without duplicate output tags; they stay algorithm tags, published, left alone by
the engine and filled by a model run; the pack checks judge the declarations."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from tagportal.catalog.choices import TagKind, TagStatus
from tagportal.catalog.models import Tag
from tagportal.catalog.services import apply_template
from tagportal.catalog.templates import check_pack, get_pack
from tagportal.engine.models import TagComputation, TagRun
from tagportal.engine.services import compute_brand
from tagportal.predictive import services
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.models import ModelOutput, PredictiveModel
from tagportal.predictive.templates import TEMPLATE_SCHEDULE
from tagportal.profiles import generator

from ..factories import BrandFactory, BusinessLineFactory

PACKS = ["medical_aesthetics", "health_nutrition", "beauty", "food_beverage"]
#: Template tag name → (model kind, output key), in every pack.
BACKED = {
    "rfm_segment": ("rfm", "segment"),
    "churn_risk": ("churn", "churn_level"),
    "aipl_stage": ("aipl", "aipl_stage"),
    "purchase_intent": ("clv", "purchase_intent_level"),
    "ltv": ("clv", "clv"),
}
END = dt.date(2026, 3, 1)
AS_OF = dt.datetime(2026, 3, 1, 15, 59, tzinfo=dt.UTC)
_DATA = generator.generate(3, 300, 30, end=END, industry="medical_aesthetics")
FRAMES = {"profiles": _DATA["customers"], "events": _DATA["events"], "orders": _DATA["orders"]}


def _brand():
    return BrandFactory(code="demo", business_line=BusinessLineFactory(code="yimei"))


def _template_tags(brand, pack_key) -> dict[str, Tag]:
    pack = get_pack(pack_key)
    by_code = {t.code: t for t in Tag.objects.filter(brand=brand)}
    return {
        spec["name"]: next(t for code, t in by_code.items() if code.endswith(f"_{spec['name']}"))
        for spec in pack.tags
        if spec["name"] in BACKED
    }


@pytest.mark.django_db
@pytest.mark.parametrize("key", PACKS)
def test_applying_a_pack_links_its_model_backed_tags_to_the_brands_models(key):
    brand = _brand()
    apply_template(brand, key)
    models = {m.kind: m for m in PredictiveModel.objects.filter(brand=brand)}
    assert set(models) == {"rfm", "clv", "churn", "aipl"}
    assert all(m.schedule == TEMPLATE_SCHEDULE and m.is_active for m in models.values())
    tags = _template_tags(brand, key)
    assert set(tags) == set(BACKED)
    for name, (kind, output) in BACKED.items():
        tag = tags[name]
        link = ModelOutput.objects.get(tag=tag)
        assert (link.model_id, link.key) == (models[kind].pk, output)
        assert tag.kind == TagKind.ALGORITHM and tag.status == TagStatus.PUBLISHED
        assert tag.definition == {"type": "manual"}
    counts = (PredictiveModel.objects.count(), ModelOutput.objects.count(), Tag.objects.count())
    apply_template(brand, key)  # again: nothing new
    assert counts == (PredictiveModel.objects.count(), ModelOutput.objects.count(), Tag.objects.count())


@pytest.mark.django_db
def test_the_engine_leaves_them_alone_and_a_run_fills_the_template_tag_without_a_duplicate():
    brand = _brand()
    apply_template(brand, "medical_aesthetics")
    tags = _template_tags(brand, "medical_aesthetics")
    compute_brand(brand, frames=(FRAMES["profiles"], FRAMES["events"], FRAMES["orders"]), as_of=AS_OF)
    assert TagRun.objects.filter(tag__brand=brand).exists()
    assert not TagRun.objects.filter(tag__in=tags.values()).exists()
    model = PredictiveModel.objects.get(brand=brand, kind="rfm")
    before = set(Tag.objects.filter(brand=brand).values_list("pk", flat=True))
    run = services.run_model(model, as_of=AS_OF, frames=FRAMES)
    assert run.status == ModelRunStatus.PUBLISHED, run.error
    outputs = {o.key: o.tag for o in ModelOutput.objects.filter(model=model).select_related("tag")}
    assert outputs["segment"] == tags["rfm_segment"]
    new = set(Tag.objects.filter(brand=brand).values_list("pk", flat=True)) - before
    assert new == {outputs[k].pk for k in ("r", "f", "m")}  # only the outputs the pack has no tag for
    assert not Tag.objects.filter(brand=brand, name="RFM 客户分层").exists()
    computation = TagComputation.objects.get(tag=tags["rfm_segment"])
    assert computation.has_result and computation.coverage > 0
    assert TagRun.objects.get(tag=tags["rfm_segment"]).status == "success"


@pytest.mark.django_db
def test_the_brands_own_model_and_edited_tags_are_kept():
    brand = _brand()
    mine = PredictiveModel.objects.create(brand=brand, kind="churn", name="我的流失模型", parameters={})
    apply_template(brand, "beauty")
    assert PredictiveModel.objects.filter(brand=brand, kind="churn").get() == mine
    assert ModelOutput.objects.get(model=mine).key == "churn_level"
    # A brand whose tag is no longer model-backed when the pack is applied again.
    second = BrandFactory(code="demo2", business_line=BusinessLineFactory(code="meizhuang"))
    apply_template(second, "beauty")
    tag = _template_tags(second, "beauty")["churn_risk"]
    ModelOutput.objects.filter(tag=tag).delete()
    Tag.objects.filter(pk=tag.pk).update(kind=TagKind.MANUAL)
    apply_template(second, "beauty")
    assert not ModelOutput.objects.filter(tag=tag).exists()


def _pack_with(change):
    pack = copy.deepcopy(get_pack("beauty"))
    tag = next(t for t in pack.tags if t["name"] == "churn_risk")
    change(tag, pack)
    return check_pack(pack, business_line="yimei", brand="ruiyan")


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t, p: t["model"].update(kind="uplift"), "unknown model kind 'uplift'"),
        (lambda t, p: t["model"].update(output="churn_score"), "has no output 'churn_score'"),
        (lambda t, p: t["model"].update(parameters={"horizon": 7}), "parameters refused"),
        (lambda t, p: t["model"].update(colour="red"), "unknown keys ['colour']"),
        (lambda t, p: t.update(model="churn"), "model must be a mapping with a kind and an output"),
        (lambda t, p: t.update(kind="composite"), "a model-backed tag is of kind algorithm"),
        (
            lambda t, p: t.update(
                definition={"type": "metric", "metric": {"agg": "count", "source": "orders"}}
            ),
            "has the definition {type: manual}",
        ),
        (lambda t, p: t["values"].pop(), "the values must be the output's codes"),
        (lambda t, p: t.update(value_type="number", values=[]), "is of value type enum, not number"),
        (
            lambda t, p: next(x for x in p.tags if x["name"] == "rfm_segment").update(model=dict(t["model"])),
            "model outputs filling more than one tag: churn/churn_level",
        ),
        (
            lambda t, p: next(x for x in p.tags if x["name"] == "ltv")["model"].update(
                parameters={"clv_months": 24}
            ),
            "tags of one model declare different parameters: clv",
        ),
    ],
)
def test_the_pack_checks_judge_model_declarations(change, message):
    assert get_pack("beauty") and check_pack(get_pack("beauty"), business_line="yimei", brand="ruiyan") == []
    problems = _pack_with(change)
    assert any(message in p for p in problems), problems


def test_a_rule_tag_still_may_not_hide_a_manual_definition():
    problems = _pack_with(lambda t, p: t.pop("model"))
    assert any("only they, have the definition {type: manual}" in p for p in problems), problems
