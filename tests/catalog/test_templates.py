"""Industry templates: every pack is valid and big enough; applying one twice changes nothing."""

from collections import Counter

import pytest
from django.core.management import call_command

from tagportal.catalog.models import Category, NamingRule, Tag, TagVersion
from tagportal.catalog.services import apply_template
from tagportal.catalog.templates import available_packs, check_pack, get_pack

from ..conftest import client_for
from ..factories import BrandFactory, BusinessLineFactory

PACKS = ["medical_aesthetics", "health_nutrition", "beauty", "food_beverage"]


def test_the_four_industries_are_there():
    assert set(PACKS) <= set(available_packs())


@pytest.mark.parametrize("key", PACKS)
def test_pack_is_valid_and_rich(key):
    pack = get_pack(key)
    assert check_pack(pack, business_line="yimei", brand="ruiyan") == []
    assert len(pack.tags) >= 40
    assert {t["kind"] for t in pack.tags} == {"system", "behavior", "algorithm", "composite", "manual"}
    assert {t["value_type"] for t in pack.tags} == {"boolean", "enum", "number"}
    assert any(t.get("refresh_mode") == "realtime" for t in pack.tags)
    for tag in pack.tags:
        assert tag["zh"] and tag["en"] and tag["description"], tag["name"]
        assert any("\u4e00" <= ch <= "\u9fff" for ch in tag["zh"]), tag["zh"]


@pytest.mark.django_db
@pytest.mark.parametrize("key", PACKS)
def test_apply_twice_changes_nothing(key):
    brand = BrandFactory(code="demo", business_line=BusinessLineFactory(code="yimei"))
    first = apply_template(brand, key)
    pack = get_pack(key)
    assert len(first.created) == len(pack.tags) and first.skipped == []
    tags = Tag.objects.filter(brand=brand)
    assert tags.count() == len(pack.tags)
    assert set(tags.values_list("status", flat=True)) == {"published"}
    assert TagVersion.objects.filter(tag__brand=brand, version=1).count() == len(pack.tags)
    assert all(code.startswith("yimei_") for code in first.created)
    counts = (Tag.objects.count(), Tag.history.count(), Category.objects.count(), Category.history.count(),
              NamingRule.objects.count(), TagVersion.objects.count())  # fmt: skip
    second = apply_template(brand, key)
    assert second.created == [] and len(second.skipped) == len(pack.tags) and not second.changed
    assert counts == (Tag.objects.count(), Tag.history.count(), Category.objects.count(), Category.history.count(),
                      NamingRule.objects.count(), TagVersion.objects.count())  # fmt: skip


@pytest.mark.slow
@pytest.mark.django_db
def test_templates_share_categories_and_composites_resolve():
    line = BusinessLineFactory(code="yimei")
    a, b = BrandFactory(code="a1", business_line=line), BrandFactory(code="b1", business_line=line)
    apply_template(a, "medical_aesthetics")
    roots = Category.objects.filter(parent=None).count()
    apply_template(b, "beauty")
    assert Category.objects.filter(parent=None).count() == roots  # shared standard roots
    composites = Tag.objects.filter(brand=a, kind="composite")
    assert composites.exists()
    codes = set(Tag.objects.filter(brand=a).values_list("code", flat=True))
    for tag in composites:
        text = str(tag.definition)
        assert "@" not in text
        assert any(code in text for code in codes - {tag.code})


@pytest.mark.django_db
def test_edited_tags_are_left_alone(world):
    brand = world.own_brand
    apply_template(brand, "beauty")
    tag = Tag.objects.filter(brand=brand, template="beauty").first()
    tag.description = "运营改过的描述"
    tag.save()
    apply_template(brand, "beauty")
    tag.refresh_from_db()
    assert tag.description == "运营改过的描述"


@pytest.mark.django_db
def test_management_command(capsys):
    brand = BrandFactory(code="cmd", business_line=BusinessLineFactory(code="shipin"))
    call_command("apply_template", "food_beverage", brand="cmd")
    out = capsys.readouterr().out
    assert f"{len(get_pack('food_beverage').tags)} created" in out
    call_command("apply_template", "food_beverage", brand="cmd")
    assert "0 created" in capsys.readouterr().out
    assert Tag.objects.filter(brand=brand).count() == len(get_pack("food_beverage").tags)
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("apply_template", "no_such_pack", brand="cmd")
    with pytest.raises(CommandError):
        call_command("apply_template", "food_beverage", brand="no_such_brand")


@pytest.mark.slow
@pytest.mark.django_db
def test_api_apply(world):
    steward = client_for(world.steward)
    url = "/api/catalog/templates/health_nutrition/apply/"
    response = steward.post(url, {"brand": world.own_brand.code}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["created"] == len(get_pack("health_nutrition").tags)
    again = steward.post(url, {"brand": world.own_brand.code}, format="json")
    assert again.status_code == 200 and again.json()["created"] == 0
    # another business line's brand is invisible to this steward; operators may not apply
    assert steward.post(url, {"brand": world.other_brand.code}, format="json").status_code == 404
    assert (
        client_for(world.operator).post(url, {"brand": world.own_brand.code}, format="json").status_code
        == 403
    )
    assert (
        steward.post("/api/catalog/templates/nope/apply/", {"brand": "x"}, format="json").status_code == 404
    )
    listing = steward.get("/api/catalog/templates/").json()
    assert {p["key"] for p in listing} >= set(PACKS)


@pytest.mark.slow
@pytest.mark.django_db
def test_bootstrap_demo_is_idempotent(capsys):
    call_command("bootstrap_demo", "--people", "120")
    out = capsys.readouterr().out
    for username in ("admin", "steward", "operator", "analyst"):
        assert username in out
    counts = Counter(Tag.objects.values_list("brand__code", flat=True))
    assert all(n >= 40 for n in counts.values()) and len(counts) == 4
    from tagportal.predictive.models import ModelOutput, ModelRun, PredictiveModel

    models = Counter(PredictiveModel.objects.values_list("brand__code", "kind"))
    assert set(models.values()) == {1} and len(models) == 4 * 4  # RFM, CLV, churn, AIPL per brand
    assert ModelRun.objects.count() == 16 and not ModelRun.objects.filter(status="running").exists()
    for run in ModelRun.objects.filter(model__kind__in=["rfm", "aipl"]):  # descriptive: always published
        assert run.status == "published", run.error
        assert f"model {run.model.name}: published" in out
    segment = ModelOutput.objects.get(model__brand__code="ruiyan", key="segment").tag
    assert segment.code == "yimei_rfm_rfm_segment" and segment.computation.has_result
    from django.db import models as dj

    from tagportal.journeys.models import Journey

    live = Counter(Journey.objects.filter(status="live").values_list("brand__code", flat=True))
    assert live == {"ruiyan": 1, "huayan": 2, "kangyuan": 1, "qingquan": 1} and "page: /journeys/" in out
    assert not Journey.objects.filter(live_version__approved_by=dj.F("live_version__proposed_by")).exists()
    history, runs = Tag.history.count(), ModelRun.objects.count()
    call_command("bootstrap_demo", "--people", "120")
    assert Tag.history.count() == history and ModelRun.objects.count() == runs
    assert Journey.objects.count() == 5
    from django.contrib.auth import authenticate
    from django.test import RequestFactory

    login = RequestFactory().post("/admin/login/")  # the login limits need the request
    assert authenticate(login, username="operator", password="tagportal-operator") is not None
