"""Activity: tags created, changed, approved, used and retired per Beijing week,
business line, brand and region."""

from __future__ import annotations

import datetime as dt

import pytest

from tagportal.catalog.models import Tag
from tagportal.governance.choices import ChangeKind, RequestState
from tagportal.governance.models import ChangeItem, ChangeRequest
from tagportal.governance.reports import ReportScope, build

from ..factories import RegionFactory
from .test_reports import LONG_AGO, at, make_tag, scope, use

W1, W2, W3 = dt.date(2026, 4, 6), dt.date(2026, 4, 13), dt.date(2026, 4, 20)  # Mondays in the period
UTC = dt.UTC


def history_of(tag: Tag):
    return Tag.history.filter(id=tag.pk).order_by("history_date", "history_id")


def save_at(tag: Tag, moment: dt.datetime, **changes) -> None:
    """Save ``changes`` to ``tag`` and date its new history record ``moment``."""
    for name, value in changes.items():
        setattr(tag, name, value)
    tag.save()
    Tag.history.filter(history_id=history_of(tag).last().history_id).update(history_date=moment)


def decided(w, tag: Tag, state: str, moment: dt.datetime) -> ChangeRequest:
    cr = ChangeRequest.objects.create(
        title="口径调整",
        business_line=w.own_line,
        brand=w.own_brand,
        proposer=w.operator,
        reviewer=w.steward,
        state=state,
        decided_at=moment,
    )
    ChangeItem.objects.create(change_request=cr, kind=ChangeKind.UPDATE, tag=tag)
    return cr


@pytest.fixture
def busy(world):
    w = world
    w.china = RegionFactory(code="cn", name="中国", level="country")
    w.shanghai = RegionFactory(code="sh", name="上海", level="province", parent=w.china)
    w.beijing = RegionFactory(code="bj", name="北京", level="province", parent=w.china)
    # created on Sunday 12 April 23:30 in Beijing (15:30 UTC): still the week of 6 April
    w.x = make_tag(w.own_brand, w.category, "x", regions=[w.shanghai, w.beijing])
    Tag.history.filter(id=w.x.pk).update(history_date=at(LONG_AGO))  # creation, regions: long ago
    Tag.objects.filter(pk=w.x.pk).update(created=dt.datetime(2026, 4, 12, 15, 30, tzinfo=UTC))
    w.x.refresh_from_db()
    save_at(w.x, at(dt.date(2026, 4, 14)), description="近90天到店次数（含预约）")
    # retired on Monday 20 April 00:30 in Beijing (Sunday 16:30 UTC): the week of 20 April
    save_at(w.x, dt.datetime(2026, 4, 19, 16, 30, tzinfo=UTC), status="retired")
    decided(w, w.x, RequestState.APPLIED, at(dt.date(2026, 4, 15)))
    decided(w, w.x, RequestState.REJECTED, at(dt.date(2026, 4, 15)))  # rejected: not counted
    decided(w, w.x, RequestState.APPROVED, at(dt.date(2026, 1, 15)))  # before the period
    use(w.x, dt.date(2026, 4, 17), 4)
    use(w.x, dt.date(2026, 4, 21), 1)
    w.y = make_tag(w.own_brand, w.category, "y", created=dt.date(2026, 4, 8))  # no region
    Tag.history.filter(id=w.y.pk).update(history_date=at(LONG_AGO))
    w.z = make_tag(w.own_brand, w.category, "z", status="deprecated")  # deprecated long ago
    Tag.history.filter(id=w.z.pk).update(history_date=at(LONG_AGO))
    save_at(w.z, at(dt.date(2026, 4, 22)), status="retired")
    save_at(w.z, at(dt.date(2026, 4, 23)), description="已下线")  # still retired: no second retirement
    return w


def cell(week, w, region, **counts) -> dict:
    row = {
        "week": week.isoformat(),
        "business_line": w.own_line.pk,
        "brand": w.own_brand.pk,
        "region": region,
    }
    return {**row, **dict.fromkeys(("created", "changed", "approved", "used", "retired"), 0), **counts}


def test_activity_counts_per_week_and_region(busy):
    w = busy
    report = build("activity", scope(brand=w.own_brand))
    sh, bj = sorted([w.shanghai.pk, w.beijing.pk])
    assert report["rows"] == [
        cell(W1, w, None, created=1),  # y
        cell(W1, w, sh, created=1),
        cell(W1, w, bj, created=1),
        cell(W2, w, sh, changed=1, approved=1, used=4),
        cell(W2, w, bj, changed=1, approved=1, used=4),
        cell(W3, w, None, changed=2, retired=1),  # z
        cell(W3, w, sh, changed=1, used=1, retired=1),
        cell(W3, w, bj, changed=1, used=1, retired=1),
    ]
    meta = report["meta"]
    assert meta["totals"] == {"created": 2, "changed": 4, "approved": 1, "used": 5, "retired": 2}
    assert meta["regions"] == {str(w.shanghai.pk): "上海", str(w.beijing.pk): "北京"}
    assert meta["brands"] == {str(w.own_brand.pk): "瑞颜"}
    assert meta["business_lines"] == {str(w.own_line.pk): "医美"}
    assert meta["weeks"][0] == "2026-03-30" and meta["weeks"][-1] == "2026-06-22"


def test_activity_of_a_region_counts_only_its_tags_and_region(busy):
    w = busy
    rows = build("activity", scope(region=w.shanghai))["rows"]
    assert {row["region"] for row in rows} == {w.shanghai.pk}
    assert sum(row["created"] for row in rows) == 1 and sum(row["retired"] for row in rows) == 1
    assert build("activity", scope(business_line=w.other_line))["rows"] == []


def test_activity_outside_the_period_is_not_counted(busy):
    w = busy
    early = build(
        "activity", ReportScope(start=dt.date(2026, 1, 1), end=dt.date(2026, 4, 5), brand=w.own_brand)
    )
    assert early["rows"] == [
        {
            "week": "2026-01-12",
            "business_line": w.own_line.pk,
            "brand": w.own_brand.pk,
            "region": region,
            "created": 0,
            "changed": 0,
            "approved": 1,
            "used": 0,
            "retired": 0,
        }
        for region in sorted([w.shanghai.pk, w.beijing.pk])
    ]
