"""Pins compare what a tag computes, not its version number: a version that only
changes a description (or a value's label) neither makes an audience warn nor stops
its refreshes, and a new audience is pinned to the latest such version."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tagportal.audiences import services
from tagportal.catalog.fingerprints import computation_fingerprint
from tagportal.catalog.models import TagVersion
from tagportal.governance import services as gov
from tagportal.governance.services import ItemSpec

from ..conftest import client_for
from .conftest import publish_new_computation, publish_new_description, store_result
from .test_services import CHURN_CODE, DAYS_CODE, EXPRESSION, SKIN_CODE, churn


@pytest.fixture
def audience(shop, world):
    return services.create_audience(
        world.operator, brand=shop.brand, name="油皮近访客", expression=EXPRESSION
    )


def page(user, one) -> str:
    client = Client()
    client.force_login(user)
    return client.get(reverse("audiences:detail", args=[one.pk])).content.decode()


def approve_description(world, tag, text="近30天内流失概率（模型口径说明更新）"):
    cr = gov.propose(world.operator, [ItemSpec("update", tag, {"description": text})])
    gov.submit(world.operator, cr)
    gov.approve(world.steward, cr, "同意", apply_now=True)
    tag.refresh_from_db()
    return tag


def test_fingerprint_reads_only_what_is_computed():
    base = {
        "value_type": "enum",
        "values": [{"code": "high", "label": "高"}, {"code": "low", "label": "低"}],
        "definition": {"type": "manual"},
        "description": "旧说明",
    }
    same = computation_fingerprint(base)
    assert computation_fingerprint({**base, "description": "新说明", "name": "改名"}) == same
    relabelled = [{"code": "high", "label": "高风险", "label_en": "High"}, {"code": "low", "label": "低风险"}]
    assert computation_fingerprint({**base, "values": relabelled}) == same
    assert computation_fingerprint({**base, "values": base["values"][::-1]}) != same  # order matters
    assert computation_fingerprint({**base, "values": [*base["values"], {"code": "mid"}]}) != same
    assert computation_fingerprint({**base, "definition": {"type": "manual", "x": 1}}) != same
    assert computation_fingerprint({**base, "value_type": "number"}) != same


def test_an_approved_description_change_does_not_make_audiences_warn(shop, world, audience):
    approve_description(world, shop.churn)
    assert shop.churn.published_version == 2
    versions = TagVersion.objects.filter(tag=shop.churn).order_by("version")
    assert versions[0].fingerprint == versions[1].fingerprint != ""

    assert services.stale_pins(audience) == []
    assert (
        client_for(world.analyst).get(f"/api/audiences/audiences/{audience.pk}/").json()["stale_pins"] == []
    )
    html = page(world.operator, audience)
    assert "tp-stale-warning" not in html and "v1 → v2" not in html
    # the engine recomputes version 2: refreshing goes on, and the pin follows it
    store_result(shop.churn, churn([2, 4, 9]))
    assert services.refresh(audience, "manual", world.operator).number == 2
    audience.refresh_from_db()
    assert audience.pinned_versions[CHURN_CODE] == 2 and audience.errors_calculating == 0
    assert services.stale_pins(audience) == []


def test_a_new_audience_after_a_description_change_is_pinned_to_the_latest_version(shop, world):
    approve_description(world, shop.churn)  # version 2 published, the result still of version 1
    fresh = services.create_audience(world.operator, brand=shop.brand, name="新人群", expression=EXPRESSION)
    assert fresh.pinned_versions == {SKIN_CODE: 1, DAYS_CODE: 1, CHURN_CODE: 2}
    assert services.stale_pins(fresh) == []
    assert services.refresh(fresh, "manual", world.operator).number == 2  # no conflict
    assert "tp-stale-warning" not in page(world.operator, fresh)


def test_a_description_change_after_a_new_computation_still_asks_for_the_repin(shop, world, audience):
    publish_new_computation(shop.churn)  # v2 computes something else …
    publish_new_description(shop.churn)  # … and v3 only re-words it
    assert [(s["pinned"], s["current"]) for s in services.stale_pins(audience)] == [(1, 3)]
    fresh = services.create_audience(world.operator, brand=shop.brand, name="新人群", expression=EXPRESSION)
    assert fresh.pinned_versions[CHURN_CODE] == 1  # what its result was computed from
    assert [s["code"] for s in services.stale_pins(fresh)] == [CHURN_CODE]
    store_result(shop.churn, churn([2, 4, 9]))  # version 3 computed
    repinned = services.repin(world.operator, audience)
    assert repinned.pinned_versions[CHURN_CODE] == 3 and services.stale_pins(repinned) == []
