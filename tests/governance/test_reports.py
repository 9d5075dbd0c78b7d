"""The usage and cold-tag reports on crafted data whose right answer is known, the
determinism and scope of every report, and requesting reports through the service."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from tagportal.catalog.models import Region, Tag
from tagportal.engine import bitmaps as bm
from tagportal.engine.models import RunStatus, TagComputation, TagRun, TagValueBitmap
from tagportal.engine.services import BEIJING
from tagportal.governance.choices import ReportKind, ReportStatus
from tagportal.governance.models import Report
from tagportal.governance.reports import ReportScope, build, cold, usage
from tagportal.governance.reports.service import DEFAULT_DAYS, request_report, scope_of
from tagportal.lineage.models import DataField, DataSource, TagInput
from tagportal.usage.choices import UsageKind
from tagportal.usage.models import TagUsage

from ..factories import RegionFactory, TagFactory, UserFactory
from .conftest import BOOL_DEF

#: The last day of the reports' period (a Sunday) and its first (a Tuesday): 90 days.
END = dt.date(2026, 6, 28)
START = END - dt.timedelta(days=89)
#: Long before the period: tags created then are past every grace period.
LONG_AGO = dt.date(2025, 1, 1)


def days_before_end(n: int) -> dt.date:
    return END - dt.timedelta(days=n)


def at(day: dt.date, hour: int = 12, minute: int = 0) -> dt.datetime:
    """A moment of a Beijing day."""
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=BEIJING)


def scope(**dimensions) -> ReportScope:
    return ReportScope(start=START, end=END, **dimensions)


def make_tag(
    brand,
    category,
    suffix: str,
    *,
    status: str = "published",
    version: int = 1,
    created: dt.date = LONG_AGO,
    regions=(),
    **fields,
) -> Tag:
    """A tag straight in ``status`` (yes/no by default), created on ``created``."""
    fields.setdefault("value_type", "boolean")
    fields.setdefault("values", [])
    fields.setdefault("definition", BOOL_DEF)
    fields.setdefault("name", f"标签{suffix}")
    tag = TagFactory(
        brand=brand,
        category=category,
        code=f"{brand.business_line.code}_{category.code}_{suffix}",
        status=status,
        published_version=None if status == "draft" else version,
        **fields,
    )
    Tag.objects.filter(pk=tag.pk).update(created=at(created))
    if regions:
        tag.regions.set(regions)
    tag.refresh_from_db()
    return tag


def use(tag: Tag, day: dt.date, count: int, kind: str = UsageKind.API_READ, client: int = 1) -> None:
    TagUsage.objects.create(tag=tag, day=day, kind=kind, client=client, count=count)


def compute(
    tag: Tag,
    *,
    coverage: float | None = 0.5,
    population: int = 1000,
    distribution: dict | None = None,
    version: int | None = 1,
    errors: int = 0,
    last_error: str = "",
    calculated: dt.datetime | None = None,
    bitmaps: dict | None = None,
) -> TagComputation:
    """A stored result: ``bitmaps`` is ``{value: OneIDs}``."""
    if distribution is None and bitmaps is not None:
        distribution = {value: len(ids) for value, ids in bitmaps.items()}
    computation = TagComputation.objects.create(
        tag=tag,
        version=version,
        value_type=tag.value_type,
        population=population,
        coverage=coverage,
        distribution=distribution or {},
        errors_calculating=errors,
        last_error=last_error,
        last_calculated_at=calculated or at(days_before_end(1)),
    )
    for value, ids in (bitmaps or {}).items():
        members = bm.bitmap(list(ids))
        TagValueBitmap.objects.create(
            computation=computation, value=value, bitmap=bm.serialize(members), count=len(members)
        )
    return computation


def by_code(report: dict) -> dict[str, dict]:
    return {row["code"]: row for row in report["rows"]}


# ---------------------------------------------------------------------------
# Usage


@pytest.fixture
def used(world):
    w = world
    w.zhang = UserFactory(username="zhangsan", display_name="张三")
    w.li = UserFactory(username="lisi")
    deleted = 424242
    w.u = make_tag(w.own_brand, w.category, "u")
    use(w.u, END, 3, client=w.zhang.pk)
    use(w.u, days_before_end(3), 2, UsageKind.AUDIENCE, client=w.li.pk)
    use(w.u, days_before_end(10), 5, UsageKind.EXPORT, client=w.zhang.pk)
    use(w.u, days_before_end(40), 25, client=w.zhang.pk)
    use(w.u, days_before_end(100), 7, UsageKind.PAGE_VIEW, client=w.zhang.pk)  # before the period
    w.v = make_tag(w.own_brand, w.category, "v", status="deprecated")
    use(w.v, days_before_end(100), 7, UsageKind.PAGE_VIEW, client=w.li.pk)
    w.r = make_tag(w.own_brand, w.category, "r")
    use(w.r, days_before_end(1), 12, client=deleted)
    use(w.r, days_before_end(35), 2, UsageKind.TAG_READ, client=w.li.pk)
    w.draft = make_tag(w.own_brand, w.category, "draft", status="draft")
    use(w.draft, END, 50, client=w.zhang.pk)
    use(w.u, END + dt.timedelta(days=1), 1000, client=w.zhang.pk)  # after the period
    return w


def test_usage_windows_clients_weeks_trend_and_last_use(used):
    w = used
    report = build("usage", scope(brand=w.own_brand))
    assert [row["code"] for row in report["rows"]] == [w.u.code, w.r.code, w.v.code]  # most used first
    u = by_code(report)[w.u.code]
    zero = dict.fromkeys(UsageKind.values, 0)
    assert u["uses"] == {
        "7": {**zero, "api_read": 3, "audience": 2, "total": 5},
        "30": {**zero, "api_read": 3, "audience": 2, "export": 5, "total": 10},
        "90": {**zero, "api_read": 28, "audience": 2, "export": 5, "total": 35},
    }
    assert u["total"] == 35
    assert u["by_client"] == {str(w.zhang.pk): 33, str(w.li.pk): 2}
    assert (u["trend"], u["trend_change"]) == ("falling", -0.6)  # 10 in the last 30 days, 25 before
    assert u["last_used"] == "2026-06-28"
    weeks = report["meta"]["weeks"]
    assert weeks[0] == "2026-03-30" and weeks[-1] == "2026-06-22" and len(weeks) == 13
    weekly = dict(zip(weeks, u["weekly"], strict=True))
    assert {week: n for week, n in weekly.items() if n} == {
        "2026-05-18": 25,
        "2026-06-15": 5,
        "2026-06-22": 5,
    }
    assert (u["tag"], u["name"], u["status"], u["brand"]) == (w.u.pk, "标签u", "published", w.own_brand.pk)


def test_usage_of_a_tag_used_before_the_period_only_and_of_a_rising_tag(used):
    w = used
    rows = by_code(build("usage", scope(brand=w.own_brand)))
    v = rows[w.v.code]
    assert v["total"] == 0 and v["uses"]["90"]["total"] == 0 and v["by_client"] == {}
    assert v["last_used"] == "2026-03-20"  # 100 days before the end, before the period
    assert (v["trend"], v["trend_change"]) == ("unused", None)
    r = rows[w.r.code]
    assert (r["trend"], r["trend_change"]) == ("rising", 5.0)  # 12 against 2
    assert r["total"] == 14
    assert w.draft.code not in rows


def test_usage_meta_names_clients_and_a_deleted_one(used):
    meta = build("usage", scope(brand=used.own_brand))["meta"]
    assert meta["clients"] == {str(used.zhang.pk): "张三", str(used.li.pk): "lisi", "424242": "#424242"}
    assert meta["windows"] == [7, 30, 90]
    assert meta["kinds"] == list(UsageKind.values)
    assert meta["period"] == ["2026-03-31", "2026-06-28"]


@pytest.mark.parametrize(
    ("recent", "previous", "expected"),
    [
        (0, 0, "unused"),
        (4, 10, "falling"),
        (5, 10, "flat"),  # exactly half is not falling
        (0, 4, "flat"),  # too few uses before to call it a fall
        (16, 10, "rising"),
        (15, 10, "flat"),
        (4, 0, "flat"),  # too few uses to call it a rise
        (5, 0, "rising"),
    ],
)
def test_trend_rule(recent, previous, expected):
    assert usage.trend(recent, previous) == expected


def test_reports_take_the_same_queries_whatever_the_number_of_tags(world):
    def queries():
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            for kind in ReportKind.values:
                build(kind, scope(brand=world.own_brand))
        return len(ctx)

    for i in range(3):
        tag = make_tag(world.own_brand, world.category, f"few{i}", regions=[RegionFactory()])
        use(tag, END, 1)
        compute(tag, bitmaps={"true": range(i, 100), "false": range(100, 200)})
    few = queries()
    for i in range(20):
        tag = make_tag(world.own_brand, world.category, f"many{i}", regions=[RegionFactory()])
        use(tag, END, 1)
        compute(tag, bitmaps={"true": range(i, 100), "false": range(100, 200)})
    assert queries() == few


# ---------------------------------------------------------------------------
# Cold tags


@pytest.fixture
def chilly(world):
    """Published tags of the own brand, each cold or warm for a known reason."""
    w = world
    brand, category = w.own_brand, w.category

    def warm(tag):  # steadily used: 10 uses in each of the last two 30-day windows
        use(tag, days_before_end(2), 10)
        use(tag, days_before_end(40), 10)
        return tag

    w.never = make_tag(brand, category, "never")
    compute(w.never, coverage=0.4)
    w.young = make_tag(brand, category, "young", created=days_before_end(10))
    compute(w.young, coverage=0.4)
    w.warm = warm(make_tag(brand, category, "warm"))
    compute(w.warm, coverage=0.5)
    w.full = warm(make_tag(brand, category, "full"))
    compute(w.full, coverage=0.996)
    w.failing = warm(make_tag(brand, category, "failing"))
    compute(w.failing, errors=3, last_error="连接超时")
    w.nothing = make_tag(brand, category, "nothing")  # never computed, never used
    w.single = warm(
        make_tag(brand, category, "single", value_type="enum", values=[{"code": "a"}, {"code": "b"}])
    )
    compute(w.single, coverage=1.0, distribution={"a": 995, "b": 5})
    w.halves = warm(
        make_tag(brand, category, "halves", value_type="enum", values=[{"code": "a"}, {"code": "b"}])
    )
    compute(w.halves, coverage=1.0, distribution={"a": 500, "b": 500})
    w.stale = warm(make_tag(brand, category, "stale", version=2))
    compute(w.stale, version=1, calculated=at(days_before_end(9), 0, 0))
    w.falling = make_tag(brand, category, "falling")
    use(w.falling, days_before_end(2), 2)
    use(w.falling, days_before_end(40), 20)
    compute(w.falling)
    w.unsourced = warm(make_tag(brand, category, "unsourced"))
    compute(w.unsourced)
    source = DataSource.objects.create(code="douyin", name="抖音小店", kind="crm", refresh_sla_hours=24)
    field = DataField.objects.create(source=source, name="shop_id", data_type="string")
    TagInput.objects.create(tag=w.unsourced, field=field)
    w.costly = make_tag(brand, category, "costly")
    compute(w.costly, coverage=0.4)
    w.costly_but_used = warm(make_tag(brand, category, "costlyused"))
    compute(w.costly_but_used)
    for tag, seconds in ((w.costly, 100), (w.costly_but_used, 100), (w.warm, 1), (w.full, 1)):
        TagRun.objects.create(
            tag=tag,
            brand=brand,
            status=RunStatus.SUCCESS,
            started_at=at(days_before_end(5)),
            evaluate_s=seconds,
        )
    TagRun.objects.create(  # a failed run costs nothing
        tag=w.warm, brand=brand, status=RunStatus.FAILED, started_at=at(days_before_end(4)), evaluate_s=500
    )
    w.draft = make_tag(brand, category, "draft", status="draft")
    w.retired = make_tag(brand, category, "retired", status="retired")
    w.report = build("cold", scope(brand=brand))
    w.rows = by_code(w.report)
    return w


def codes(row) -> list[str]:
    return [reason["code"] for reason in row["reasons"]]


def test_a_never_used_tag_past_the_grace_period_is_cold(chilly):
    row = chilly.rows[chilly.never.code]
    assert row["cold"] is True and row["score"] == 50.0
    assert row["reasons"] == [{"code": "never_used", "params": {"days": 90}}]
    assert cold.reasons_text(row) == ["Not used in the last 90 days"]
    assert row["components"] == {
        "usage": 1.0,
        "coverage": 0.0,
        "computation": 0.0,
        "lineage": 0.0,
        "cost": 0.0,
    }
    assert row["uses_90"] == 0 and row["last_used"] is None


def test_a_young_tag_is_not_cold_for_being_unused(chilly):
    row = chilly.rows[chilly.young.code]
    assert row["score"] == 0.0 and not row["cold"] and row["reasons"] == []


def test_a_well_used_tag_with_half_coverage_is_not_cold(chilly):
    row = chilly.rows[chilly.warm.code]
    assert row["score"] == 0.0 and row["cold"] is False and row["reasons"] == []
    assert (row["coverage"], row["uses_90"], row["population"]) == (0.5, 20, 1000)


def test_full_coverage_and_failing_computations_are_reasons(chilly):
    full = chilly.rows[chilly.full.code]
    assert full["reasons"] == [{"code": "full_coverage", "params": {"coverage": 0.996}}]
    assert cold.reasons_text(full) == ["Covers 99.6% of people: it tells nothing apart"]
    assert full["components"]["coverage"] == 1.0 and not full["cold"]
    assert full["components"]["cost"] == 0.01  # uninformative, so its cost counts: 1 s of the 100 s at p95
    assert full["score"] == 20.1
    failing = chilly.rows[chilly.failing.code]
    assert failing["reasons"] == [{"code": "failing", "params": {"failures": 3, "error": "连接超时"}}]
    assert cold.reasons_text(failing) == ["The computation failed 3 times in a row: 连接超时"]
    assert failing["components"]["computation"] == 1.0 and failing["score"] == 10.0


def test_no_result_and_never_used_together(chilly):
    row = chilly.rows[chilly.nothing.code]
    assert codes(row) == ["never_used", "no_result"]
    assert row["score"] == 70.0 and row["cold"]
    assert row["coverage"] is None and row["population"] is None


def test_an_enum_is_uninformative_only_when_one_value_holds_everyone(chilly):
    single = chilly.rows[chilly.single.code]
    assert single["reasons"] == [{"code": "single_value", "params": {"value": "a", "share": 0.995}}]
    assert cold.reasons_text(single) == ["One value (“a”) covers 99.5% of people: it tells nothing apart"]
    assert chilly.rows[chilly.halves.code]["reasons"] == []  # full coverage, two even halves


def test_stale_result_old_version_and_stale_source(chilly):
    stale = chilly.rows[chilly.stale.code]
    assert stale["reasons"] == [
        {"code": "stale_result", "params": {"days": 10}},  # computed 10 days before the period ended
        {"code": "old_version", "params": {"result_version": 1, "published_version": 2}},
    ]
    assert stale["components"]["computation"] == 0.7 and stale["score"] == 7.0
    unsourced = chilly.rows[chilly.unsourced.code]
    assert unsourced["reasons"] == [{"code": "stale_source", "params": {"sources": ["抖音小店"]}}]
    assert cold.reasons_text(unsourced) == ["Reads data past its refresh SLA: 抖音小店"]
    assert unsourced["components"]["lineage"] == 1.0


def test_falling_use(chilly):
    row = chilly.rows[chilly.falling.code]
    assert row["reasons"] == [{"code": "falling_use", "params": {"previous": 20, "recent": 2, "days": 30}}]
    assert row["components"]["usage"] == 0.82  # 0.9 - 0.8 * 2 / 20
    assert row["score"] == 41.0 and not row["cold"]


def test_cost_counts_only_for_unused_or_uninformative_tags(chilly):
    costly = chilly.rows[chilly.costly.code]
    assert costly["components"]["cost"] == 1.0
    assert costly["reasons"][-1] == {"code": "costly", "params": {"seconds": 100.0}}
    assert costly["score"] == 60.0
    assert chilly.rows[chilly.costly_but_used.code]["components"]["cost"] == 0.0
    assert chilly.rows[chilly.costly_but_used.code]["score"] == 0.0


def test_cold_rows_order_statuses_and_meta(chilly):
    rows = chilly.report["rows"]
    keys = [(-row["score"], row["code"]) for row in rows]
    assert keys == sorted(keys)
    assert chilly.draft.code not in chilly.rows and chilly.retired.code not in chilly.rows
    meta = chilly.report["meta"]
    assert meta["threshold"] == 50 and meta["grace_days"] == 30
    assert meta["weights"] == cold.WEIGHTS and sum(meta["weights"].values()) == pytest.approx(1.0)
    assert meta["cold_count"] == sum(row["cold"] for row in rows) == 3  # never, nothing, costly


def test_reason_texts_in_chinese(chilly):
    from django.utils import translation

    with translation.override("zh-hans"):
        texts = cold.reasons_text(chilly.rows[chilly.never.code])
    assert len(texts) == 1 and "90" in texts[0]


# ---------------------------------------------------------------------------
# Every report: deterministic, JSON, scoped


@pytest.fixture
def two_lines(world):
    """In each business line a used, a never-used and a duplicate tag; a region tree."""
    w = world
    w.china = RegionFactory(code="cn", name="中国", level="country")
    w.shanghai = RegionFactory(code="sh", name="上海", level="province", parent=w.china)
    w.beijing = RegionFactory(code="bj", name="北京", level="province", parent=w.china)
    for line_name, brand in (("own", w.own_brand), ("other", w.other_brand)):
        region = w.shanghai if line_name == "own" else w.beijing
        hot = make_tag(
            brand, w.category, "hot", name="热门标签", regions=[region], created=days_before_end(20)
        )
        twin = make_tag(brand, w.category, "twin", name="热门 标签", regions=[region])
        quiet = make_tag(brand, w.category, "quiet", name="冷清标签")
        use(hot, days_before_end(1), 9)
        use(twin, days_before_end(50), 4)
        compute(hot, bitmaps={"true": range(100), "false": range(100, 200)})
        compute(twin, bitmaps={"true": range(1, 100), "false": range(100, 200)})
        setattr(w, f"{line_name}_tags", {hot.pk, twin.pk, quiet.pk})
    return w


def tag_ids_of(kind: str, report: dict) -> set[int]:
    if kind == "merge":
        return {row[side]["tag"] for row in report["rows"] for side in ("a", "b")}
    if kind == "activity":
        return set()
    return {row["tag"] for row in report["rows"]}


@pytest.mark.parametrize("kind", ReportKind.values)
def test_every_report_is_deterministic_and_json(two_lines, kind):
    first = build(kind, scope())
    second = build(kind, scope())
    assert first == second
    assert json.loads(json.dumps(first)) == first  # JSON as it is: no dates, tuples or int keys
    assert first["rows"], kind


@pytest.mark.parametrize("kind", ["usage", "cold", "merge"])
def test_reports_keep_to_the_business_line_brand_and_region(two_lines, kind):
    w = two_lines
    own = tag_ids_of(kind, build(kind, scope(business_line=w.own_line)))
    assert own and own <= w.own_tags
    assert tag_ids_of(kind, build(kind, scope(brand=w.other_brand))) <= w.other_tags
    everything = tag_ids_of(kind, build(kind, scope()))
    assert everything & w.own_tags and everything & w.other_tags
    in_shanghai = tag_ids_of(kind, build(kind, scope(region=w.shanghai)))
    in_china = tag_ids_of(kind, build(kind, scope(region=w.china)))  # the regions below count
    region_tagged = Tag.objects.filter(regions__isnull=False).values_list("pk", flat=True)
    assert in_shanghai and in_shanghai <= w.own_tags & set(region_tagged)
    assert in_china == in_shanghai | tag_ids_of(kind, build(kind, scope(region=w.beijing)))
    assert in_china > in_shanghai


def test_activity_keeps_to_the_business_line_and_region(two_lines):
    w = two_lines
    rows = build("activity", scope(business_line=w.own_line))["rows"]
    assert rows and {row["business_line"] for row in rows} == {w.own_line.pk}
    rows = build("activity", scope(region=w.china))["rows"]
    assert {row["region"] for row in rows} == {w.shanghai.pk, w.beijing.pk}
    assert {row["brand"] for row in rows} == {w.own_brand.pk, w.other_brand.pk}


# ---------------------------------------------------------------------------
# Through the service


@pytest.mark.parametrize("kind", ReportKind.values)
def test_request_report_runs_stores_and_is_idempotent(two_lines, kind):
    w = two_lines
    first = request_report(w.admin, kind, run_now=True, end=END)
    assert first.status == ReportStatus.SUCCESS, first.error
    assert (first.period_start, first.period_end) == (END - dt.timedelta(days=DEFAULT_DAYS[kind] - 1), END)
    assert first.data == build(kind, scope_of(first))
    assert first.row_count == len(first.data["rows"]) > 0
    again = request_report(w.admin, kind, run_now=True, end=END)
    assert again.pk == first.pk and again.runs == 2
    assert Report.objects.get(pk=first.pk).data == first.data
    assert Report.objects.filter(kind=kind).count() == 1


def test_request_report_for_a_steward_of_the_business_line(two_lines):
    w = two_lines
    report = request_report(w.steward, "usage", run_now=True, end=END, business_line=w.own_line)
    assert report.status == ReportStatus.SUCCESS
    assert {row["tag"] for row in report.data["rows"]} <= w.own_tags


def test_request_report_refuses_future_and_empty_periods(two_lines):
    w = two_lines
    with pytest.raises(ValidationError) as future:
        request_report(w.admin, "usage", run_now=True, end=dt.date(2999, 1, 1))
    assert "period_end" in future.value.message_dict
    with pytest.raises(ValidationError) as empty:
        request_report(w.admin, "cold", run_now=True, start=END, end=END - dt.timedelta(days=1))
    assert "period_start" in empty.value.message_dict
    assert not Report.objects.exists()


def test_request_report_refuses_who_may_not_run_it(two_lines):
    w = two_lines
    with pytest.raises(PermissionDenied):
        request_report(w.operator, "usage", run_now=True, end=END, business_line=w.own_line)
    with pytest.raises(PermissionDenied):
        request_report(w.steward, "usage", run_now=True, end=END, business_line=w.other_line)
    with pytest.raises(PermissionDenied):
        request_report(w.steward, "merge", run_now=True, end=END, brand=w.other_brand)
    with pytest.raises(PermissionDenied):  # every business line needs the unrestricted reach
        request_report(w.steward, "cold", run_now=True, end=END)
    assert not Report.objects.exists()


def test_rows_name_tags_with_their_regions(two_lines):
    w = two_lines
    rows = build("usage", scope(brand=w.own_brand))["rows"]
    hot = next(row for row in rows if row["code"].endswith("_hot"))
    assert hot["regions"] == [w.shanghai.pk]
    assert set(hot) >= {"tag", "code", "name", "name_en", "status", "version", "business_line", "brand"}
    assert {"category", "regions", "owner"} <= set(hot)
    assert Region.objects.filter(pk__in=hot["regions"]).count() == 1
