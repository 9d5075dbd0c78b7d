"""The tag dictionary exported to Excel and CSV: Chinese headers, the right usage numbers,
only the tags the user may view, the same number of queries for 5 tags as for 50."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation
from openpyxl import load_workbook

from tagportal.catalog import export
from tagportal.catalog.models import Tag
from tagportal.core.days import beijing_today
from tagportal.engine.models import TagComputation
from tagportal.lineage.models import InputOrigin, TagInput
from tagportal.usage.choices import UsageKind
from tagportal.usage.models import TagUsage, UsageBuffer
from tagportal.usage.services import add_counts, record

from ..conftest import client_for
from ..factories import CategoryFactory, RegionFactory, TagFactory, UserFactory
from ..formula_guard import HOSTILE, assert_csv_guarded, assert_xlsx_guarded
from ..lineage.factories import DataFieldFactory, DataSourceFactory

API = "/api/catalog/tags/export/"
ADMIN = "/admin/catalog/tag/export/"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

#: Headers whose Chinese is already in the catalog's translations.
CHINESE_HEADERS = {
    0: "编码",
    1: "中文名",
    2: "英文名",
    3: "分类",
    4: "业务线",
    5: "品牌",
    6: "地域",
    7: "标签类型",
    8: "值类型",
    9: "取值",
    10: "更新方式",
    11: "状态",
    12: "发布版本",
    13: "负责人",
    15: "覆盖率",
    16: "最后计算时间",
}
ENGLISH_HEADERS = [
    "Code",
    "Chinese name",
    "English name",
    "Category",
    "Business line",
    "Brand",
    "Regions",
    "Kind",
    "Value type",
    "Values",
    "Refresh mode",
    "Status",
    "Published version",
    "Owner",
    "Data sources",
    "Coverage",
    "Last calculated",
    "Uses, last 7 days",
    "Uses, last 30 days",
    "Uses, last 90 days",
    "Last used",
    "Top client",
]
COLUMN = {name: i for i, name in enumerate(ENGLISH_HEADERS)}


def days_ago(n: int) -> dt.date:
    return beijing_today() - dt.timedelta(days=n)


@pytest.fixture
def dictionary(world):
    """world's two tags, with uses, a computation, regions and a data source on own_tag.

    own_tag uses (all kinds count): today 3 (analyst) + 1 buffered (analyst), 6 days ago 2
    (steward), 7 days ago 4 (analyst), 40 days ago 10 (steward), 100 days ago 50 (analyst).
    → 7 days: 6, 30 days: 10, 90 days: 20, last used today, top client (90 days): the
    steward (12 against 8).
    """
    w = world
    w.steward.display_name = "王数据"
    w.steward.save()
    own = w.own_tag
    add_counts({own.pk: 3}, client=w.analyst.pk, kind=UsageKind.API_READ, day=days_ago(0))
    add_counts({own.pk: 2}, client=w.steward.pk, kind=UsageKind.AUDIENCE, day=days_ago(6))
    add_counts({own.pk: 4}, client=w.analyst.pk, kind=UsageKind.TAG_READ, day=days_ago(7))
    add_counts({own.pk: 10}, client=w.steward.pk, kind=UsageKind.EXPORT, day=days_ago(40))
    add_counts({own.pk: 50}, client=w.analyst.pk, kind=UsageKind.API_READ, day=days_ago(100))
    add_counts({own.pk: 1}, client=w.analyst.pk, kind=UsageKind.API_READ, day=days_ago(-1))  # tomorrow
    record({own.pk: 1}, client=w.analyst.pk, kind=UsageKind.PAGE_VIEW)  # still in the buffer
    # the other business line's tag is used too, but never shows
    add_counts({w.other_tag.pk: 99}, client=w.admin.pk, day=days_ago(1))
    TagComputation.objects.create(
        tag=own,
        version=1,
        coverage=0.4567,
        last_calculated_at=dt.datetime(2026, 11, 30, 18, 5, tzinfo=dt.UTC),
    )
    china = RegionFactory(code="cn", name="中国", level="country")
    own.regions.add(RegionFactory(code="gd", name="广东", level="province", parent=china), china)
    field = DataFieldFactory(source=DataSourceFactory(code="crm", name="会员CRM"), name="visits")
    TagInput.objects.create(tag=own, field=field, origin=InputOrigin.DECLARED)
    Tag.objects.filter(pk=own.pk).update(status="published", published_version=2, owner=w.steward)
    own.refresh_from_db()
    return w


def rows_of_xlsx(content: bytes):
    workbook = load_workbook(io.BytesIO(content))
    sheet = workbook.active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    return sheet, rows[0], rows[1:]


def rows_of_csv(content: bytes):
    assert content.startswith(b"\xef\xbb\xbf"), content[:10]
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    return rows[0], rows[1:]


def by_code(rows) -> dict:
    return {row[0]: row for row in rows}


def admin_client(user):
    client = Client()
    client.force_login(user)
    return client


# ---------------------------------------------------------------------------
# Excel


def test_excel_has_chinese_headers_and_the_right_numbers(dictionary):
    w = dictionary
    response = client_for(w.analyst).get(API, {"format": "xlsx"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == XLSX
    assert response["Content-Disposition"] == (
        f'attachment; filename="tag-dictionary-{beijing_today().isoformat()}.xlsx"'
    )
    sheet, headers, rows = rows_of_xlsx(response.content)
    assert sheet.title == "标签字典"
    assert len(headers) == len(ENGLISH_HEADERS)
    for index, chinese in CHINESE_HEADERS.items():
        assert headers[index] == chinese, (index, headers)
    with translation.override("zh-hans"):  # rendered through gettext, in Chinese
        assert headers[COLUMN["Uses, last 7 days"]] == translation.gettext("Uses, last %(days)s days") % {
            "days": 7
        }
        assert headers[COLUMN["Top client"]] == translation.gettext("Top client")

    rows = by_code(rows)
    assert set(rows) == {w.own_tag.code}  # the other business line's tag never shows
    row = rows[w.own_tag.code]
    assert row[COLUMN["Chinese name"]] == "到店次数"
    assert row[COLUMN["Category"]] == "到店行为"
    assert row[COLUMN["Business line"]] == "医美"
    assert row[COLUMN["Brand"]] == "瑞颜"
    assert row[COLUMN["Regions"]] == "中国、广东"
    assert row[COLUMN["Kind"]] == "行为"  # choice labels in Chinese
    assert row[COLUMN["Value type"]] == "数值"
    assert row[COLUMN["Refresh mode"]] == "批量（定时）"
    assert row[COLUMN["Status"]] == "已发布"
    assert row[COLUMN["Values"]] == "低(low) <2、高(high) ≥2"
    assert row[COLUMN["Published version"]] == 2
    assert row[COLUMN["Owner"]] == "王数据"
    assert row[COLUMN["Data sources"]] == "会员CRM"
    assert row[COLUMN["Coverage"]] == pytest.approx(0.4567)
    assert row[COLUMN["Last calculated"]] == dt.datetime(2026, 12, 1, 2, 5)  # Beijing time
    assert row[COLUMN["Uses, last 7 days"]] == 6
    assert row[COLUMN["Uses, last 30 days"]] == 10
    assert row[COLUMN["Uses, last 90 days"]] == 20
    assert row[COLUMN["Last used"]].date() == beijing_today()
    assert row[COLUMN["Top client"]] == "王数据"


def test_excel_layout(dictionary):
    content = client_for(dictionary.admin).get(API).content  # xlsx unless asked otherwise
    sheet, _headers, rows = rows_of_xlsx(content)
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:V{len(rows) + 1}"
    assert all(cell.font.bold for cell in sheet[1])
    widths = [sheet.column_dimensions[c].width for c in "ABCDEFGHIJKLMNOPQRSTUV"]
    assert all(8 <= width <= 60 for width in widths), widths
    assert sheet.column_dimensions["A"].width > len("yimei_visit_dao_dian_ci_shu")
    coverage = sheet.cell(row=2 + [r[0] for r in rows].index(dictionary.own_tag.code), column=16)
    assert coverage.number_format == "0.0%"


def test_english_on_request(dictionary):
    response = client_for(dictionary.admin).get(API, {"format": "xlsx", "lang": "en"})
    sheet, headers, rows = rows_of_xlsx(response.content)
    assert headers == ENGLISH_HEADERS
    assert sheet.title == "Tag dictionary"
    row = by_code(rows)[dictionary.own_tag.code]
    assert row[COLUMN["Status"]] == "Published"
    assert row[COLUMN["Regions"]] == "中国, 广东"


def test_an_unknown_language_falls_back_to_chinese(dictionary):
    response = client_for(dictionary.admin).get(API, {"format": "csv", "lang": "klingon"})
    headers, _rows = rows_of_csv(response.content)
    assert headers[0] == "编码"


def test_text_that_looks_like_a_formula_stays_text(world):
    TagFactory(brand=world.own_brand, category=world.category, code="yimei_visit_formula", name="=1+2")
    xlsx = client_for(world.analyst).get(API).content
    sheet, _headers, rows = rows_of_xlsx(xlsx)
    index = [r[0] for r in rows].index("yimei_visit_formula")
    cell = sheet.cell(row=index + 2, column=2)
    assert cell.value == "'=1+2" and cell.data_type == "s"
    _headers, csv_rows = rows_of_csv(client_for(world.analyst).get(API, {"format": "csv"}).content)
    assert by_code(csv_rows)["yimei_visit_formula"][1] == "'=1+2"


def test_every_download_of_the_dictionary_guards_formulas(world):
    for number, name in enumerate(HOSTILE):
        TagFactory(
            brand=world.own_brand, category=world.category, code=f"yimei_visit_hostile_{number}", name=name
        )
    for fmt, check in (("xlsx", assert_xlsx_guarded), ("csv", assert_csv_guarded)):
        check(client_for(world.analyst).get(API, {"format": fmt}).content)
        check(admin_client(world.admin).get(ADMIN, {"format": fmt}).content)


# ---------------------------------------------------------------------------
# CSV


def test_csv_starts_with_a_bom_and_parses(dictionary):
    w = dictionary
    response = client_for(w.analyst).get(API, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].endswith(f'tag-dictionary-{beijing_today().isoformat()}.csv"')
    headers, rows = rows_of_csv(response.content)
    assert headers[:3] == ["编码", "中文名", "英文名"]
    row = by_code(rows)[w.own_tag.code]
    assert len(row) == len(headers) == len(ENGLISH_HEADERS)
    assert row[COLUMN["Chinese name"]] == "到店次数"
    assert row[COLUMN["Coverage"]] == "45.7%"
    assert row[COLUMN["Last calculated"]] == "2026-12-01 02:05"
    assert row[COLUMN["Uses, last 7 days"] : COLUMN["Uses, last 90 days"] + 1] == ["6", "10", "20"]
    assert row[COLUMN["Last used"]] == beijing_today().isoformat()
    assert row[COLUMN["Top client"]] == "王数据"


def test_a_tag_never_used_nor_computed(world):
    _headers, rows = rows_of_csv(client_for(world.analyst).get(API, {"format": "csv"}).content)
    row = by_code(rows)[world.own_tag.code]
    assert row[COLUMN["Coverage"]] == "" and row[COLUMN["Last calculated"]] == ""
    assert row[COLUMN["Uses, last 7 days"] :] == ["0", "0", "0", "", ""]


# ---------------------------------------------------------------------------
# Scope and filters


def test_an_operator_sees_only_their_business_line(world):
    more = TagFactory(brand=world.own_brand, category=world.category)
    others = [TagFactory(brand=world.other_brand, category=world.category) for _ in range(3)]
    for response in (
        client_for(world.operator).get(API, {"format": "csv"}),
        admin_client(world.operator).get(ADMIN, {"format": "csv"}),
    ):
        assert response.status_code == 200
        _headers, rows = rows_of_csv(response.content)
        assert set(by_code(rows)) == {world.own_tag.code, more.code}
        assert not {t.code for t in others} & set(by_code(rows))
    # filtering by another business line never widens the scope
    response = client_for(world.operator).get(API, {"format": "csv", "business_line": world.other_line.code})
    assert rows_of_csv(response.content)[1] == []


def test_the_admin_sees_every_tag(world):
    _headers, rows = rows_of_csv(client_for(world.admin).get(API, {"format": "csv"}).content)
    assert set(by_code(rows)) == {world.own_tag.code, world.other_tag.code}


def test_anonymous_and_unpermitted_users_get_nothing(world):
    assert Client().get(API).status_code in (401, 403)
    assert client_for(world.nobody).get(API).status_code == 403
    response = Client().get(ADMIN)
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert admin_client(world.nobody).get(ADMIN).status_code == 403


@pytest.mark.parametrize(
    "params",
    [
        lambda w: {"business_line": w.other_line.code},
        lambda w: {"business_line": str(w.other_line.pk)},
        lambda w: {"brand": w.other_brand.code},
        lambda w: {"brand": f"{w.other_brand.pk},nosuchbrand"},
        lambda w: {"status": "draft,published", "brand": w.other_brand.code},
    ],
)
def test_filters_by_id_or_code(world, params):
    response = client_for(world.admin).get(API, {"format": "csv", **params(world)})
    assert response.status_code == 200
    assert set(by_code(rows_of_csv(response.content)[1])) == {world.other_tag.code}


def test_filter_by_status_region_and_category(dictionary):
    w = dictionary
    sub = CategoryFactory(code="store", name="门店", parent=w.category, naming_rule=None)
    in_sub = TagFactory(brand=w.own_brand, category=sub)
    elsewhere = TagFactory(brand=w.own_brand, category=CategoryFactory(code="buy", name="购买"))

    def codes(**params):
        response = client_for(w.admin).get(API, {"format": "csv", **params})
        assert response.status_code == 200, response.content
        return set(by_code(rows_of_csv(response.content)[1]))

    assert codes(status="published") == {w.own_tag.code}
    assert codes(region="gd") == {w.own_tag.code}
    assert codes(region="cn", status="published") == {w.own_tag.code}
    assert codes(category="visit") == {w.own_tag.code, w.other_tag.code, in_sub.code}
    assert codes(category=str(sub.pk)) == {in_sub.code}
    assert codes(category="buy", brand="ruiyan") == {elsewhere.code}


def test_bad_export_parameters_are_400(world):
    client = client_for(world.admin)
    response = client.get(API, {"format": "pdf"})
    assert response.status_code == 400 and "pdf" in response.json()["detail"]
    response = client.get(API, {"status": "gone"})
    assert response.status_code == 400 and "gone" in response.json()["detail"]


# ---------------------------------------------------------------------------
# The admin


def test_admin_export_follows_the_changelist_filters(world):
    more = TagFactory(brand=world.own_brand, category=world.category)
    client = admin_client(world.admin)
    response = client.get(ADMIN, {"format": "xlsx", "brand__id__exact": world.own_brand.pk, "q": "到店"})
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX
    _sheet, headers, rows = rows_of_xlsx(response.content)
    assert headers[0] == "编码"
    assert set(by_code(rows)) == {world.own_tag.code, more.code}
    response = client.get(ADMIN, {"format": "csv", "brand": world.other_brand.code})
    assert set(by_code(rows_of_csv(response.content)[1])) == {world.other_tag.code}


def test_admin_export_with_bad_parameters_goes_back_to_the_list(world):
    client = admin_client(world.admin)
    response = client.get(ADMIN, {"format": "pdf"})
    assert response.status_code == 302 and response["Location"] == "/admin/catalog/tag/"
    response = client.get(ADMIN, {"no_such_field__exact": 1})
    assert response.status_code == 302 and response["Location"].endswith("?e=1")


def test_changelist_offers_the_export_with_its_filters(world):
    client = admin_client(world.operator)
    response = client.get("/admin/catalog/tag/", {"status__exact": "draft", "p": 1})
    assert response.status_code == 200
    html = response.content.decode()
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="(/admin/catalog/tag/export/\?[^"]*)"', html)]
    assert len(hrefs) == 2, hrefs
    assert all("status__exact=draft" in h and "p=" not in h for h in hrefs), hrefs
    assert {h.rsplit("format=", 1)[1] for h in hrefs} == {"xlsx", "csv"}
    # the link exports what the list shows
    Tag.objects.filter(pk=world.own_tag.pk).update(status="published", published_version=1)
    draft = TagFactory(brand=world.own_brand, category=world.category)
    csv_href = next(h for h in hrefs if h.endswith("format=csv"))
    response = client.get(csv_href)
    assert response.status_code == 200
    assert set(by_code(rows_of_csv(response.content)[1])) == {draft.code}


def test_export_selected_tags_action(world):
    more = TagFactory(brand=world.own_brand, category=world.category)
    response = admin_client(world.operator).post(
        "/admin/catalog/tag/",
        {"action": "export_selected", "_selected_action": [world.own_tag.pk, world.other_tag.pk]},
    )
    assert response.status_code == 200
    assert response["Content-Type"] == XLSX
    _sheet, headers, rows = rows_of_xlsx(response.content)
    assert headers[0] == "编码"
    assert set(by_code(rows)) == {world.own_tag.code}  # selected, visible; not `more`
    assert more.code not in by_code(rows)


# ---------------------------------------------------------------------------
# Costs and side effects


def test_exporting_is_not_a_use(dictionary):
    before = sorted(TagUsage.objects.values_list("tag_id", "day", "kind", "client", "count"))
    client_for(dictionary.analyst).get(API)
    admin_client(dictionary.analyst).get(ADMIN)
    after = sorted(TagUsage.objects.values_list("tag_id", "day", "kind", "client", "count"))
    assert not UsageBuffer.objects.exists()
    # the only change is the buffered page view, folded in by the first export
    assert len(after) == len(before) + 1
    assert (dictionary.own_tag.pk, beijing_today(), "page_view", dictionary.analyst.pk, 1) in after
    assert not TagUsage.objects.filter(kind=UsageKind.EXPORT, day=beijing_today()).exists()


def _grow(world, n):
    """``n`` visible tags, each with regions, uses by two clients, a computation and a source."""
    region = RegionFactory(code="sh", name="上海", level="country")
    source = DataSourceFactory(code="pos", name="门店POS")
    clients = [UserFactory(display_name=f"调用方{i}") for i in range(2)]
    for i in range(n - Tag.objects.filter(brand=world.own_brand).count()):
        tag = TagFactory(brand=world.own_brand, category=world.category, owner=clients[0])
        tag.regions.add(region)
        for client in clients:
            add_counts({tag.pk: i + 1}, client=client.pk, day=days_ago(i % 30))
        TagComputation.objects.create(tag=tag, coverage=0.5, last_calculated_at=timezone.now())
        TagInput.objects.create(tag=tag, field=DataFieldFactory(source=source, name=f"visits_{tag.pk}"))


def _queries(user, world, n) -> int:
    _grow(world, n)
    record([world.own_tag.pk], client=user.pk)  # a buffered use to fold first
    user = type(user).objects.get(pk=user.pk)  # as in a request: no permissions cached yet
    with CaptureQueriesContext(connection) as context:
        _headers, rows = export.dictionary_rows(user, Tag.objects.all())
    visible = n + (1 if user.pk == world.admin.pk else 0)  # the admin sees the other line's tag too
    assert len(rows) == visible
    return len(context.captured_queries)


@pytest.mark.parametrize("who", ["analyst", "admin"])
def test_queries_do_not_grow_with_the_number_of_tags(world, who):
    user = getattr(world, who)
    export.dictionary_rows(user, Tag.objects.all())  # warm the content type cache
    few = _queries(user, world, 5)
    many = _queries(user, world, 50)
    assert many == few, (few, many)
    assert many <= 20  # folding the buffer is half of them


def test_api_export_queries_are_bounded(world, django_assert_max_num_queries):
    _grow(world, 50)
    with django_assert_max_num_queries(25):
        response = client_for(world.analyst).get(API, {"format": "xlsx"})
    assert response.status_code == 200
    assert len(rows_of_xlsx(response.content)[2]) == 50


def test_dictionary_rows_with_nothing_to_show(world):
    with translation.override("zh-hans"):
        headers, rows = export.dictionary_rows(world.nobody, Tag.objects.all())
    assert headers[0] == "编码" and rows == []
    _sheet, headers, rows = rows_of_xlsx(export.export_xlsx(headers, rows))
    assert headers[0] == "编码" and rows == []


def test_api_export_is_in_the_schema(db):
    import json

    schema = json.loads(Client().get("/api/schema/", {"format": "json"}).content)
    operation = schema["paths"]["/api/catalog/tags/export/"]["get"]
    assert {XLSX, "text/csv"} <= set(operation["responses"]["200"]["content"])
    assert {"format", "lang", "business_line", "brand", "region", "status", "category"} <= {
        p["name"] for p in operation["parameters"]
    }
