"""The dictionary page built for reading (the tag changelist) and a tag's history that
shows the change: one row per published version, who proposed and who approved it, in
Beijing time, the comparison opening on a change of content."""

import datetime as dt
import html as htmllib
import re

import pytest
from django.test import Client
from django.utils import translation

from tagportal.catalog import services as catalog
from tagportal.catalog.history import LIFECYCLE_FIELDS, default_pair
from tagportal.catalog.models import Tag
from tagportal.governance import services as gov
from tagportal.governance.services import ItemSpec

from ..factories import CategoryFactory

URL = "/admin/catalog/tag/"


def login(user):
    client = Client()
    client.force_login(user)
    return client


def row_of(html, code):
    """The ``<tr>`` of the result list holding the tag ``code``."""
    table = re.search(r'<table id="result_list".*?</table>', html, re.S).group(0)
    for row in re.findall(r"<tr[^>]*>.*?</tr>", table, re.S):
        if code in row:
            return row
    raise AssertionError(f"no row for {code}")


def text(fragment):
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment))).strip()


# --- the dictionary page -----------------------------------------------------------------------


def test_chinese_name_comes_first_as_the_link_with_the_code_under_it(world):
    tag = world.own_tag
    html = login(world.operator).get(URL).content.decode()
    row = row_of(html, tag.code)
    link = re.search(r"<th[^>]*>\s*<a [^>]*>(.*?)</a>", row, re.S)
    assert link, "the first column is a link"
    assert re.search(
        rf'<span class="tp-name">{tag.name}</span>\s*<small class="tp-code">{tag.code}</small>', link.group(1)
    )
    assert row.index(tag.name) < row.index(tag.code)
    headers = re.findall(r'<th scope="col"\s+class="([^"]+)"', html)
    columns = [re.search(r"column-(\S+)", h).group(1) for h in headers if "column-" in h]
    assert columns[:2] == ["tag_name", "category_path"]
    for column in ("status", "version_label", "coverage", "owner", "updated"):
        assert column in columns


def test_category_shows_as_a_breadcrumb(world):
    parent = CategoryFactory(code="basic", name="基础属性", naming_rule=world.category.naming_rule)
    child = CategoryFactory(code="demo", name="人口属性", parent=parent, naming_rule=None)
    tag = world.own_tag
    Tag.objects.filter(pk=tag.pk).update(category=child)
    row = row_of(login(world.operator).get(URL).content.decode(), tag.code)
    assert re.search(
        r'<span class="tp-crumb">基础属性</span> › <span class="tp-crumb tp-leaf">人口属性</span>', row
    )
    assert "基础属性 › 人口属性" in text(row)


def test_version_and_last_update_are_short_and_in_beijing_time(world):
    tag = catalog.publish_tag(world.own_tag, user=world.steward).tag
    # 2026-12-06 23:10 UTC is 07:10 on the 7th in Beijing
    Tag.objects.filter(pk=tag.pk).update(last_updated=dt.datetime(2026, 12, 6, 23, 10, tzinfo=dt.UTC))
    row = row_of(login(world.operator).get(URL).content.decode(), tag.code)
    cells = dict(re.findall(r'<td class="field-(\w+)[^"]*">(.*?)</td>', row, re.S))
    assert text(cells["version_label"]) == "v1"
    assert text(cells["updated"]) == "2026-12-07"
    assert 'title="2026-12-07 07:10"' in cells["updated"]


def test_facets_by_business_line_brand_category_kind_and_status(world):
    response = login(world.admin).get(URL)
    parameters = set()
    for spec in response.context["cl"].filter_specs:
        parameters.update(spec.expected_parameters())
    assert {"business_line__id__exact", "brand__id__exact", "category", "kind__exact", "status__exact"} <= (
        parameters
    )
    titles = [str(spec.title) for spec in response.context["cl"].filter_specs]
    assert titles[:5] == ["business line", "brand", "category", "kind", "status"]


def test_fifty_tags_a_page(world):
    Tag.objects.bulk_create(
        [
            Tag(
                brand=world.own_brand,
                business_line=world.own_line,
                category=world.category,
                code=f"yimei_visit_page_{i}",
                name=f"分页标签{i}",
                kind="behavior",
                value_type="boolean",
            )
            for i in range(60)
        ]
    )
    client = login(world.operator)
    visible = Tag.objects.restrict(world.operator, "view").count()
    assert visible > 60
    first = client.get(URL)
    assert len(first.context["cl"].result_list) == 50
    assert first.context["cl"].list_per_page == 50
    second = client.get(URL, {"p": 2})
    assert len(second.context["cl"].result_list) == min(50, visible - 50)


def test_read_only_title_for_an_analyst(world):
    response = login(world.analyst).get(URL)
    assert response.context["title"] == "Tag dictionary"
    html = response.content.decode()
    assert "<h1>Tag dictionary</h1>" in html
    assert "to change" not in html and "to view" not in html


def test_an_editor_keeps_the_title_for_changing(world):
    response = login(world.operator).get(URL)
    assert response.context["title"] != "Tag dictionary"


def test_read_only_title_in_chinese(world):
    client = login(world.analyst)
    html = client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert "<h1>标签字典</h1>" in html
    assert "Tag dictionary" not in html and "来修改" not in html and "Select tag" not in html
    with translation.override("zh-hans"):
        html = client.get(URL, HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert '<html lang="zh-hans"' in html and "标签字典" in html


def test_the_dictionary_is_read_at_full_width(world):
    html = login(world.operator).get(URL).content.decode()
    assert 'id="nav-sidebar"' not in html


# --- history that shows the change -------------------------------------------------------------


@pytest.fixture
def approved(world):
    """The own tag published (v1) by the admin, then two approved change requests by the
    operator, approved by the steward: a description (v2) and an English name (v3)."""
    tag = world.own_tag
    catalog.publish_tag(tag, user=world.admin, note="首次发布")
    for changes in ({"description": "按到店记录统计的近90天到店次数"}, {"name_en": "Store visits (90 days)"}):
        tag.refresh_from_db()
        cr = gov.propose(world.operator, [ItemSpec("update", tag, changes)], submit_now=True)
        gov.approve(world.steward, cr, "同意", apply_now=True)
    tag.refresh_from_db()
    return tag


def test_one_approval_makes_one_history_record(world):
    tag = world.own_tag
    catalog.publish_tag(tag, user=world.admin)
    tag.refresh_from_db()
    before = tag.history.count()
    catalog.apply_changes(tag, {"description": "新的描述"}, user=world.steward, reason="完善描述")
    assert tag.history.count() == before + 1
    record = tag.history.order_by("-history_date", "-history_id").first()
    assert record.description == "新的描述" and record.published_version == 2
    assert record.history_user == world.steward and record.history_change_reason == "完善描述"


def test_history_shows_one_row_per_version_with_who_proposed_and_approved(world, approved):
    world.operator.display_name, world.steward.display_name = "运营小王", "治理老李"
    world.operator.save()
    world.steward.save()
    html = login(world.analyst).get(f"/admin/catalog/tag/{approved.pk}/history/").content.decode()
    table = re.search(r'<table id="tp-versions".*?</table>', html, re.S).group(0)
    rows = re.findall(r"<tr>.*?</tr>", table.split("<tbody>", 1)[1], re.S)
    assert [re.search(r"<strong>(v\d+)</strong>", r).group(1) for r in rows] == ["v3", "v2", "v1"]
    newest, middle, first = (text(r) for r in rows)
    assert "运营小王" in newest and "治理老李" in newest
    assert "English name" in newest and "description" in middle
    assert "First published" in first
    for version, row in zip(approved.versions.order_by("-version"), rows, strict=True):
        stamp = version.published_at.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
        assert stamp in text(row)
    assert "+00:00" not in html and "Deleted" not in html and "pk=None" not in html


def test_history_rows_name_nobody_as_a_dash(world, approved):
    html = login(world.analyst).get(f"/admin/catalog/tag/{approved.pk}/history/").content.decode()
    edits = re.search(r'<table id="change-history".*?</table>', html, re.S).group(0)
    assert "Certified by" in edits  # the publication sets who certified the tag…
    assert "Deleted" not in edits and "pk=None" not in edits  # …from nobody, shown as —


def test_default_comparison_is_the_last_change_of_content(world, approved):
    client = login(world.analyst)
    records = list(approved.history.order_by("history_date", "history_id"))
    old, new = default_pair(records)
    assert (old.published_version, new.published_version) == (2, 3)
    history = client.get(f"/admin/catalog/tag/{approved.pk}/history/").content.decode()
    assert re.search(rf'name="from" value="{old.history_id}"[^>]*checked', history)
    assert re.search(rf'name="to" value="{new.history_id}"[^>]*checked', history)
    html = client.get(f"/admin/catalog/tag/{approved.pk}/history/compare/").content.decode()
    fields = re.findall(r'data-field="([^"]+)"', html)
    assert [f for f in fields if f not in LIFECYCLE_FIELDS] == ["name_en"]  # not v1 → v2's description
    assert "Store visits (90 days)" in html


def test_default_comparison_skips_a_publication_that_changed_nothing(world):
    """A tag edited as a draft then published: the comparison opens on the last edit, not
    on the publication (which only changes the status)."""
    tag = world.own_tag
    catalog.update_tag(None, tag, description="草稿里改的描述")
    catalog.publish_tag(tag, user=world.admin)
    html = login(world.analyst).get(f"/admin/catalog/tag/{tag.pk}/history/compare/").content.decode()
    fields = re.findall(r'data-field="([^"]+)"', html)
    assert fields == ["description"]
