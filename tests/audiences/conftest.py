"""A brand with ten people and four computed tags whose members are known, for
expression tests: skin type (enum), visited (boolean), last-visit days (number with
buckets) and churn risk (enum)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tagportal.audiences.store import STORE
from tagportal.catalog.services import publish_tag
from tagportal.engine import bitmaps as bm
from tagportal.engine.models import TagComputation, TagValueBitmap, pack_numbers
from tagportal.profiles.models import Customer

from ..factories import TagFactory

PEOPLE = list(range(1, 11))
SKIN = {"oily": [1, 2, 3, 4], "dry": [5, 6], "mixed": [7]}  # 8, 9, 10 unknown
VISITED = {"true": [1, 3, 5, 7, 9], "false": [2, 4, 6, 8]}  # 10 has no value
DAYS = {1: 3.0, 2: 10.0, 3: 30.0, 4: 31.0, 5: 45.0, 6: 90.0, 7: 200.0}  # 8, 9, 10 none
CHURN = {"high": [2, 4, 9], "low": [1, 3, 5, 6, 7, 8, 10]}


def store_result(tag, values: dict[str, list[int]], numbers: dict[int, float] | None = None, at=None):
    import pandas as pd

    series = pd.Series(numbers) if numbers else None
    computation, _ = TagComputation.objects.update_or_create(
        tag=tag,
        defaults={
            "version": tag.published_version,
            "value_type": tag.value_type,
            "last_calculated_at": at or timezone.now(),
            "population": len(PEOPLE),
            "coverage": len({i for ids in values.values() for i in ids}) / len(PEOPLE),
            "numbers": pack_numbers(series.sort_index()) if series is not None else None,
        },
    )
    TagValueBitmap.objects.filter(computation=computation).delete()
    for value, ids in values.items():
        TagValueBitmap.objects.create(
            computation=computation, value=value, bitmap=bm.serialize(bm.bitmap(ids)), count=len(ids)
        )
    return computation


def publish_new_computation(tag):
    """Publish the tag's next version with one more enum value: what it computes changes,
    so audiences pinned to the previous version are asked to re-pin."""
    from tagportal.catalog.models import Tag

    values = [*tag.values, {"code": f"extra{len(tag.values)}", "label": "extra"}]
    Tag.objects.filter(pk=tag.pk).update(values=values)
    tag.refresh_from_db()
    publish_tag(tag)
    tag.refresh_from_db()
    return tag


def publish_new_description(tag, description="新的说明"):
    """Publish the tag's next version with only a new description."""
    from tagportal.catalog.models import Tag

    Tag.objects.filter(pk=tag.pk).update(description=description)
    tag.refresh_from_db()
    publish_tag(tag)
    tag.refresh_from_db()
    return tag


@pytest.fixture
def shop(world):
    STORE.clear()
    brand = world.own_brand
    for oneid in PEOPLE:
        Customer.objects.create(brand=brand, oneid=oneid)

    def tag(suffix, name, value_type, values):
        t = TagFactory(
            brand=brand,
            category=world.category,
            code=f"yimei_visit_{suffix}",
            name=name,
            name_en=suffix.replace("_", " "),
            value_type=value_type,
            values=values,
            definition={"type": "manual"},
            kind="manual",
        )
        publish_tag(t)
        t.refresh_from_db()
        return t

    class Shop:
        pass

    s = Shop()
    s.brand = brand
    s.skin = tag("skin_type", "肤质", "enum", [{"code": c, "label": c} for c in ("oily", "dry", "mixed")])
    s.visited = tag("visited_30d", "近30天到店", "boolean", [])
    s.days = tag(
        "last_visit_days",
        "最近到店天数",
        "number",
        [
            {"code": "recent", "label": "近期", "min": 0, "max": 31},
            {"code": "older", "label": "较早", "min": 31},
        ],
    )
    s.churn = tag("churn_risk", "流失风险", "enum", [{"code": c, "label": c} for c in ("high", "low")])
    store_result(s.skin, SKIN)
    store_result(s.visited, VISITED)
    store_result(
        s.days,
        {"recent": [i for i, d in DAYS.items() if d < 31], "older": [i for i, d in DAYS.items() if d >= 31]},
        DAYS,
    )
    store_result(s.churn, CHURN)
    yield s
    STORE.clear()
