"""Lookalike audiences: the feature matrix built from bitmaps, a model that finds a
planted group from a part of it, the size and threshold choices, refusals that create
nothing, and the same people for the same random state."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from tagportal.audiences import lookalike
from tagportal.audiences.models import Audience, AudienceKind, AudienceSnapshot, RefreshTrigger
from tagportal.audiences.store import STORE
from tagportal.catalog.services import publish_tag
from tagportal.engine import bitmaps as bm
from tagportal.engine.models import TagComputation, TagValueBitmap, pack_numbers
from tagportal.profiles.models import Customer

from ..factories import TagFactory

N_PEOPLE = 2_000
SEED_SHARE = 0.3


def store(tag, values: dict[str, np.ndarray], population: int, numbers: pd.Series | None = None):
    """A computed result of ``tag`` (the ``store_result`` pattern of conftest, any size)."""
    computation, _ = TagComputation.objects.update_or_create(
        tag=tag,
        defaults={
            "version": tag.published_version,
            "value_type": tag.value_type,
            "last_calculated_at": timezone.now(),
            "population": population,
            "coverage": sum(len(ids) for ids in values.values()) / population,
            "numbers": pack_numbers(numbers.sort_index()) if numbers is not None else None,
        },
    )
    TagValueBitmap.objects.filter(computation=computation).delete()
    TagValueBitmap.objects.bulk_create(
        TagValueBitmap(
            computation=computation, value=value, bitmap=bm.serialize(bm.bitmap(ids)), count=len(ids)
        )
        for value, ids in values.items()
    )


def make_tag(brand, category, suffix, value_type, values):
    tag = TagFactory(
        brand=brand,
        category=category,
        code=f"{brand.business_line.code}_visit_{suffix}",
        name=suffix,
        name_en=suffix,
        value_type=value_type,
        values=values,
        definition={"type": "manual"},
        kind="manual",
    )
    publish_tag(tag)
    tag.refresh_from_db()
    return tag


def make_seed(brand, members, name="油皮会员", owner=None) -> Audience:
    """A rule audience whose latest snapshot holds ``members``."""
    seed = Audience.objects.create(
        name=name, brand=brand, business_line=brand.business_line, owner=owner, size=len(members)
    )
    AudienceSnapshot.objects.create(
        audience=seed,
        number=1,
        taken_at=timezone.now(),
        trigger=RefreshTrigger.CREATED,
        bitmap=bm.serialize(bm.bitmap(members)),
        size=len(members),
        population=N_PEOPLE,
    )
    return seed


@pytest.fixture
def planted(world):
    """2,000 people and four computed tags; the group is segment = a and vip = true
    (about 12 %), the seed a random 30 % of it. Spend and city are noise."""
    STORE.clear()
    brand = world.own_brand
    rng = np.random.default_rng(7)
    oneids = np.arange(1, N_PEOPLE + 1, dtype=np.int64)
    Customer.objects.bulk_create(Customer(brand=brand, oneid=int(i)) for i in oneids)

    segment = rng.choice(np.array(["a", "b", "c", "d"]), N_PEOPLE)
    vip = rng.random(N_PEOPLE) < 0.5
    vip_known = rng.random(N_PEOPLE) > 0.05
    spend = np.round(rng.lognormal(4.5, 1.0, N_PEOPLE), 2)
    spend_known = rng.random(N_PEOPLE) > 0.1
    city = rng.choice(np.array(["bj", "sh", "gz", "sz", "cd"]), N_PEOPLE)

    def codes(*pairs):
        return [{"code": c, "label": c} for c in pairs]

    tags = {
        "segment": make_tag(brand, world.category, "segment", "enum", codes("a", "b", "c", "d")),
        "vip": make_tag(brand, world.category, "vip", "boolean", []),
        "spend": make_tag(
            brand,
            world.category,
            "spend",
            "number",
            [{"code": "low", "label": "low", "max": 100}, {"code": "high", "label": "high", "min": 100}],
        ),
        "city": make_tag(brand, world.category, "city", "enum", codes("bj", "sh", "gz", "sz", "cd")),
    }
    store(tags["segment"], {v: oneids[segment == v] for v in "abcd"}, N_PEOPLE)
    store(
        tags["vip"],
        {"true": oneids[vip & vip_known], "false": oneids[~vip & vip_known]},
        N_PEOPLE,
    )
    known = spend_known
    store(
        tags["spend"],
        {"low": oneids[known & (spend < 100)], "high": oneids[known & (spend >= 100)]},
        N_PEOPLE,
        pd.Series(spend[known], index=oneids[known]),
    )
    store(tags["city"], {v: oneids[city == v] for v in ("bj", "sh", "gz", "sz", "cd")}, N_PEOPLE)

    group = oneids[(segment == "a") & vip & vip_known]
    seed_ids = np.sort(rng.choice(group, size=int(len(group) * SEED_SHARE), replace=False))

    class Planted:
        pass

    p = Planted()
    p.world, p.brand, p.tags, p.oneids = world, brand, tags, oneids
    p.group = group
    p.seed_ids = seed_ids
    p.hidden = np.setdiff1d(group, seed_ids)  # the group members the lookalike should find
    p.seed = make_seed(brand, seed_ids, owner=world.operator)
    yield p
    STORE.clear()


def members_of(audience: Audience) -> np.ndarray:
    raw = audience.snapshots.order_by("-number").values_list("bitmap", flat=True).first()
    return bm.bitmap_ids(bm.deserialize(bytes(raw)))


# -- features --------------------------------------------------------------------


def test_features_one_hot_rank_and_missing(shop):
    oneids, X, names = lookalike.features(shop.brand)

    assert list(oneids) == list(range(1, 11))
    assert names == [
        "yimei_visit_churn_risk=high",
        "yimei_visit_churn_risk=low",
        "yimei_visit_last_visit_days=older",
        "yimei_visit_last_visit_days=recent",
        "yimei_visit_last_visit_days#rank",
        "yimei_visit_last_visit_days#missing",
        "yimei_visit_skin_type=dry",
        "yimei_visit_skin_type=mixed",
        "yimei_visit_skin_type=oily",
        "yimei_visit_visited_30d=false",
        "yimei_visit_visited_30d=true",
    ]
    dense = X.toarray()
    column = {name: dense[:, i] for i, name in enumerate(names)}
    assert list(np.flatnonzero(column["yimei_visit_skin_type=oily"]) + 1) == [1, 2, 3, 4]
    assert list(np.flatnonzero(column["yimei_visit_visited_30d=true"]) + 1) == [1, 3, 5, 7, 9]
    assert list(np.flatnonzero(column["yimei_visit_last_visit_days#missing"]) + 1) == [8, 9, 10]
    # mid-ranks of 3, 10, 30, 31, 45, 90, 200 among 7 numbers; missing people get 0
    rank = column["yimei_visit_last_visit_days#rank"]
    assert rank[:7] == pytest.approx([1 / 14, 3 / 14, 5 / 14, 7 / 14, 9 / 14, 11 / 14, 13 / 14])
    assert list(rank[7:]) == [0, 0, 0]
    # nobody is in two values of one tag
    assert dense[:, 6:9].sum(axis=1).max() == 1


def test_features_of_some_people_and_without_some_tags(shop):
    from pyroaring import BitMap

    oneids, X, names = lookalike.features(
        shop.brand, BitMap([2, 4, 9]), exclude_codes=["yimei_visit_churn_risk"]
    )

    assert list(oneids) == [2, 4, 9]
    assert X.shape == (3, len(names))
    assert not any(name.startswith("yimei_visit_churn_risk") for name in names)
    oily = names.index("yimei_visit_skin_type=oily")
    assert list(X.toarray()[:, oily]) == [1, 1, 0]


@pytest.mark.parametrize("oneids", [[2, 5, 9, 100], [2, 5, 9, 10**9]], ids=["dense", "sparse"])
def test_oneids_are_mapped_to_rows(oneids):
    rows, found = lookalike._positions(np.array(oneids, dtype=np.int64))(
        np.array([5, 3, oneids[-1], oneids[-1] + 1, 2], dtype=np.int64)
    )
    assert list(rows) == [1, 3, 0]
    assert list(found) == [True, False, True, False, True]


def test_features_refuse_a_brand_without_computed_tags(world):
    STORE.clear()
    with pytest.raises(ValidationError, match="no computed tags"):
        lookalike.features(world.other_brand)


# -- the model finds the planted group ---------------------------------------------


def test_lookalike_finds_the_rest_of_the_planted_group(planted):
    hidden = planted.hidden
    audience = lookalike.create_lookalike(planted.world.operator, planted.seed, size=len(hidden))

    picked = members_of(audience)
    assert len(picked) == len(hidden) == audience.size
    assert not np.isin(picked, planted.seed_ids).any()  # the expansion only
    precision = np.isin(picked, hidden).mean()
    assert precision >= 0.8

    metrics = audience.model_metrics
    assert metrics["auc"] >= 0.8
    assert 0 < metrics["average_precision"] <= 1
    assert metrics["positives"] == len(planted.seed_ids)
    assert metrics["negatives"] == N_PEOPLE - len(planted.seed_ids)
    assert metrics["validation"] == "hold-out of one person in five"
    top = {f["feature"] for f in metrics["top_features"][:2]}
    assert top == {"yimei_visit_segment=a", "yimei_visit_vip=true"}
    assert all(f["coefficient"] > 0 for f in metrics["top_features"][:2])
    assert 0 < metrics["score_threshold_used"] < 1

    assert audience.kind == AudienceKind.LOOKALIKE
    assert audience.seed == planted.seed
    assert audience.brand == planted.brand and audience.business_line == planted.brand.business_line
    assert audience.owner == planted.world.operator
    assert audience.expression == {}
    assert audience.population == N_PEOPLE
    assert audience.name == f"油皮会员 lookalike ({len(hidden)})"
    assert audience.model_params["size"] == len(hidden)
    assert audience.model_params["random_state"] == 0
    assert audience.model_params["negatives"] == metrics["negatives"]
    assert "yimei_visit_spend#rank" in audience.model_params["features"]
    assert set(audience.pinned_versions) == {f"yimei_visit_{s}" for s in ("segment", "vip", "spend", "city")}

    snapshot = audience.snapshots.get()
    assert (snapshot.number, snapshot.trigger) == (1, RefreshTrigger.CREATED)
    assert (snapshot.size, snapshot.joined, snapshot.left) == (len(hidden), len(hidden), 0)
    assert audience.history.first().history_change_reason == "Lookalike of “油皮会员”"


def test_threshold_mode_takes_everyone_scoring_at_least_it(planted):
    model = lookalike.fit(planted.brand, bm.bitmap(planted.seed_ids))
    oneids, scores = lookalike.score(model, planted.brand)
    assert len(oneids) == N_PEOPLE - len(planted.seed_ids)
    assert not np.isin(oneids, planted.seed_ids).any()
    threshold = 0.5

    audience = lookalike.create_lookalike(
        planted.world.operator, planted.seed, threshold=threshold, name="扩量"
    )

    picked = members_of(audience)
    assert audience.name == "扩量"
    assert audience.size == len(picked) == int((scores >= threshold).sum())
    assert set(picked) == set(oneids[scores >= threshold])
    assert audience.model_params == {
        "threshold": threshold,
        "random_state": 0,
        "negatives": audience.model_metrics["negatives"],
        "features": model.feature_names,
    }
    assert audience.model_metrics["score_threshold_used"] == threshold


def test_size_mode_counts_and_best_scores_first(planted):
    model = lookalike.fit(planted.brand, bm.bitmap(planted.seed_ids))
    oneids, scores = lookalike.score(model, planted.brand)

    audience = lookalike.create_lookalike(planted.world.operator, planted.seed, size=300)

    picked = members_of(audience)
    assert audience.size == len(picked) == 300
    kept = scores[np.isin(oneids, picked)]
    left = scores[~np.isin(oneids, picked)]
    assert kept.min() >= left.max()
    assert audience.model_metrics["score_threshold_used"] == pytest.approx(kept.min(), abs=1e-6)


def test_a_seed_never_refreshed_is_taken_from_its_expression(planted):
    expression = {
        "all": [
            {"tag": "yimei_visit_segment", "op": "eq", "value": "a"},
            {"tag": "yimei_visit_vip", "op": "eq", "value": True},
        ]
    }
    seed = Audience.objects.create(
        name="a+vip", brand=planted.brand, business_line=planted.brand.business_line, expression=expression
    )

    audience = lookalike.create_lookalike(planted.world.operator, seed, size=100)

    assert audience.model_metrics["positives"] == len(planted.group)
    assert not np.isin(members_of(audience), planted.group).any()


def test_everyone_outside_the_seed(planted):
    others = N_PEOPLE - len(planted.seed_ids)
    audience = lookalike.create_lookalike(planted.world.operator, planted.seed, size=others)
    assert audience.size == others


def test_same_random_state_same_people(planted):
    op = planted.world.operator
    first = lookalike.create_lookalike(op, planted.seed, size=500, random_state=3)
    STORE.clear()
    again = lookalike.create_lookalike(op, planted.seed, size=500, random_state=3)

    assert list(members_of(first)) == list(members_of(again))
    assert first.model_metrics == again.model_metrics


def test_negatives_are_capped(planted):
    model = lookalike.fit(planted.brand, bm.bitmap(planted.seed_ids), max_negatives=400)
    assert model.negatives == 400
    assert model.metrics["negatives"] == 400
    assert model.metrics["holdout_positives"] + model.metrics["holdout_negatives"] == pytest.approx(
        0.2 * (400 + len(planted.seed_ids)), abs=1
    )


# -- refusals create nothing ---------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ({}, "either the number of people to add or a score threshold"),
        ({"size": 10, "threshold": 0.5}, "either the number of people to add or a score threshold"),
        ({"size": 0}, "at least 1"),
        ({"size": N_PEOPLE}, "outside the seed; choose at most that many"),
        ({"threshold": 0}, "between 0 and 1"),
        ({"threshold": 1.0}, "between 0 and 1"),
    ],
)
def test_bad_choices_are_refused(planted, choice, message):
    before = Audience.objects.count()
    with pytest.raises(ValidationError, match=message):
        lookalike.create_lookalike(planted.world.operator, planted.seed, **choice)
    assert Audience.objects.count() == before


def test_a_threshold_nobody_reaches_is_refused(planted):
    model = lookalike.fit(planted.brand, bm.bitmap(planted.seed_ids))
    _oneids, scores = lookalike.score(model, planted.brand)
    before = Audience.objects.count()
    with pytest.raises(ValidationError, match="Nobody outside the seed scores"):
        lookalike.create_lookalike(planted.world.operator, planted.seed, threshold=(scores.max() + 1) / 2)
    assert Audience.objects.count() == before


def test_tiny_seed_is_refused(planted):
    tiny = make_seed(planted.brand, planted.seed_ids[:10], name="tiny")
    before = Audience.objects.count()
    with pytest.raises(ValidationError, match="has 10 people of the brand; a lookalike needs at least 20"):
        lookalike.create_lookalike(planted.world.operator, tiny, size=10)
    assert Audience.objects.count() == before


def test_a_seed_of_everyone_is_refused(planted):
    everyone = make_seed(planted.brand, planted.oneids, name="everyone")
    before = Audience.objects.count()
    with pytest.raises(ValidationError, match="holds \\(nearly\\) everyone"):
        lookalike.create_lookalike(planted.world.operator, everyone, size=10)
    assert Audience.objects.count() == before


def test_a_brand_without_computed_tags_is_refused(planted):
    world = planted.world
    Customer.objects.bulk_create(Customer(brand=world.other_brand, oneid=i) for i in range(1, 101))
    seed = make_seed(world.other_brand, list(range(1, 51)), name="清泉会员")
    before = Audience.objects.count()
    with pytest.raises(ValidationError, match="no computed tags"):
        lookalike.create_lookalike(world.admin, seed, size=10)
    assert Audience.objects.count() == before


def test_another_brands_seed_is_refused(planted):
    world = planted.world
    seed = make_seed(world.other_brand, list(range(1, 51)), name="清泉会员")
    before = Audience.objects.count()
    with pytest.raises(PermissionDenied):
        lookalike.create_lookalike(world.operator, seed, size=10)
    assert Audience.objects.count() == before


@pytest.mark.parametrize("who", ["analyst", "nobody"])
def test_users_who_may_not_add_audiences_are_refused(planted, who):
    before = Audience.objects.count()
    with pytest.raises(PermissionDenied):
        lookalike.create_lookalike(getattr(planted.world, who), planted.seed, size=10)
    assert Audience.objects.count() == before
