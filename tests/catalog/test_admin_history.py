"""A tag's change history in the admin: who changed what, field-by-field comparison, and
read-only published versions."""

import html as htmllib
import json
import re

import pytest

from tagportal.catalog.models import Tag, TagVersion
from tagportal.catalog.services import publish_tag, update_tag

from ..factories import RegionFactory
from .test_admin_forms import add_data, change_data, form_of, login

OLD_DEFINITION_LINE = '"last_days": 90'
NEW_DEFINITION_LINE = '"last_days": 30'


def history_url(tag):
    return f"/admin/catalog/tag/{tag.pk}/history/"


def compare_url(tag):
    return f"/admin/catalog/tag/{tag.pk}/history/compare/"


def rows(html, table_id):
    """The ``<tr>`` of a table's body, as text with tags kept (for attribute checks)."""
    table = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.S)
    assert table, f"no table #{table_id}"
    body = table.group(0).split("<tbody>", 1)[1]
    return re.findall(r"<tr[^>]*>.*?</tr>", body, re.S)


def text(fragment):
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", fragment))


@pytest.fixture
def edited(world):
    """A tag created and edited three times through the admin change form, by three people.

    1. 运营小王 (operator) adds 肤质类型.
    2. 运营小王 changes the English name and the definition window (90 → 30 days).
    3. 治理老李 (steward) puts it in the region 中国 › 广东 (a save and an M2M change).
    4. 管理员阿张 (admin) changes the description.
    """
    for user, name in (
        (world.operator, "运营小王"),
        (world.steward, "治理老李"),
        (world.admin, "管理员阿张"),
    ):
        user.display_name = name
        user.save()
    china = RegionFactory(code="cn", name="中国", level="country")
    guangdong = RegionFactory(code="gd", name="广东", level="province", parent=china)

    operator = login(world.operator)
    definition = (
        '{"type": "bucket", "metric": {"agg": "count", "source": "events", '
        '"where": [{"field": "type", "op": "eq", "value": "store_visit"}], "window": {"last_days": 90}}, '
        '"buckets": [{"value": "oily", "max": 3}, {"value": "dry", "min": 3}]}'
    )
    response = operator.post("/admin/catalog/tag/add/", add_data(world, definition=definition))
    assert response.status_code == 302, form_of(response).errors
    tag = Tag.objects.get(name="肤质类型")

    new_definition = {**tag.definition, "metric": {**tag.definition["metric"], "window": {"last_days": 30}}}
    response = operator.post(
        f"/admin/catalog/tag/{tag.pk}/change/",
        change_data(tag, name_en="Skin type (self-reported)", definition=json.dumps(new_definition)),
    )
    assert response.status_code == 302, form_of(response).errors

    tag.refresh_from_db()
    response = login(world.steward).post(
        f"/admin/catalog/tag/{tag.pk}/change/", change_data(tag, regions=[str(guangdong.pk)])
    )
    assert response.status_code == 302, form_of(response).errors

    tag.refresh_from_db()
    response = login(world.admin).post(
        f"/admin/catalog/tag/{tag.pk}/change/", change_data(tag, description="顾客自述的肤质（问卷）")
    )
    assert response.status_code == 302, form_of(response).errors
    tag.refresh_from_db()
    return tag


def test_every_admin_edit_is_recorded_with_its_author(world, edited):
    records = list(edited.history.order_by("history_date", "history_id"))
    authors = [r.history_user for r in records]
    assert authors[0] == world.operator and records[0].history_type == "+"
    assert authors[1] == world.operator
    assert set(authors[2:-1]) == {world.steward}
    assert authors[-1] == world.admin
    assert records[0].history_change_reason == "Created in the portal"
    assert records[-1].history_change_reason == "Edited in the portal"


def test_history_page_lists_each_change_with_who_made_it(world, edited):
    response = login(world.operator).get(history_url(edited))
    assert response.status_code == 200
    html = response.content.decode()
    table = rows(html, "change-history")
    records = list(edited.history.order_by("-history_date", "-history_id"))
    assert len(table) == len(records) >= 4
    # newest first; each row names who made the change
    expected_people = [str(r.history_user) for r in records]
    assert expected_people[0] == "管理员阿张" and expected_people[-1] == "运营小王"
    for row, person, record in zip(table, expected_people, records, strict=True):
        assert person in text(row)
        assert f'value="{record.history_id}"' in row
    # what changed is on the row
    assert "Description" in text(table[0])
    assert "顾客自述的肤质（问卷）" in text(table[0])
    creation = text(table[-1])
    assert "Created" in creation and "运营小王" in creation
    assert "Skin type (self-reported)" in html
    assert "治理老李" in html


def test_history_page_links_to_the_compare_view(world, edited):
    html = login(world.operator).get(history_url(edited)).content.decode()
    assert f'action="{compare_url(edited)}"' in html
    assert 'name="from"' in html and 'name="to"' in html


def test_compare_shows_changed_fields_old_and_new(world, edited):
    records = list(edited.history.order_by("history_date", "history_id"))
    first, last = records[0], records[-1]
    response = login(world.operator).get(
        compare_url(edited), {"from": first.history_id, "to": last.history_id}
    )
    assert response.status_code == 200
    html = response.content.decode()
    table = {re.search(r'data-field="([^"]+)"', r).group(1): r for r in rows(html, "tp-diff")}
    assert set(table) == {"name_en", "description", "definition", "regions"}
    for row in table.values():
        assert 'class="changed"' in row

    # plain fields: the old value, then the new one
    name_en = text(table["name_en"])
    assert name_en.index("Skin type") < name_en.index("Skin type (self-reported)")
    description = text(table["description"])
    assert description.index("顾客自述的肤质") < description.index("顾客自述的肤质（问卷）")

    # the definition is a line diff: the old line struck out on the left, the new one added on the right
    definition = table["definition"]
    old_cell, new_cell = re.findall(r"<td>(.*?)</td>", definition, re.S)
    assert re.search(
        r'<span class="tp-line-del">\s*' + re.escape(htmllib.escape(OLD_DEFINITION_LINE)), old_cell
    )
    assert re.search(
        r'<span class="tp-line-add">\s*' + re.escape(htmllib.escape(NEW_DEFINITION_LINE)), new_cell
    )
    assert NEW_DEFINITION_LINE not in text(old_cell)
    assert OLD_DEFINITION_LINE not in text(new_cell)
    assert '"agg": "count"' in text(old_cell) and '"agg": "count"' in text(new_cell)  # context lines

    # the regions (many-to-many): none before, 中国 › 广东 after
    old_regions, new_regions = (
        text(c).strip() for c in re.findall(r"<td>(.*?)</td>", table["regions"], re.S)
    )
    assert old_regions == "—"
    assert new_regions == "中国 › 广东"

    # the header names who made each version; the count is right
    header = text(re.search(r"<thead>.*?</thead>", html, re.S).group(0))
    assert "运营小王" in header and "管理员阿张" in header
    assert "4 fields differ." in html


def test_compare_with_all_shows_unchanged_fields_too(world, edited):
    records = list(edited.history.order_by("history_date", "history_id"))
    params = {"from": records[0].history_id, "to": records[-1].history_id}
    client = login(world.operator)
    changed_only = client.get(compare_url(edited), params).content.decode()
    everything = client.get(compare_url(edited), {**params, "all": "1"}).content.decode()
    all_rows = {re.search(r'data-field="([^"]+)"', r).group(1): r for r in rows(everything, "tp-diff")}
    assert {"code", "name", "kind", "value_type", "values", "brand", "category"} <= set(all_rows)
    assert {"name_en", "description", "definition", "regions"} <= set(all_rows)
    assert 'class="changed"' not in all_rows["code"]
    assert 'class="changed"' in all_rows["definition"]
    assert edited.code in text(all_rows["code"])
    assert "瑞颜" in text(all_rows["brand"])
    assert 'data-field="code"' not in changed_only
    assert "Show all fields" in changed_only and "Show changed fields only" in everything


def test_compare_two_consecutive_versions(world, edited):
    """The steward's region change alone, picked in either order."""
    records = list(edited.history.order_by("history_date", "history_id"))
    before, after = records[1], records[-2]
    client = login(world.operator)
    for params in (
        {"from": before.history_id, "to": after.history_id},
        {"from": after.history_id, "to": before.history_id},
    ):
        html = client.get(compare_url(edited), params).content.decode()
        fields = [re.search(r'data-field="([^"]+)"', r).group(1) for r in rows(html, "tp-diff")]
        assert fields == ["regions"]


def test_compare_defaults_to_the_last_two_versions(world, edited):
    html = login(world.operator).get(compare_url(edited)).content.decode()
    fields = [re.search(r'data-field="([^"]+)"', r).group(1) for r in rows(html, "tp-diff")]
    assert fields == ["description"]


def test_compare_with_a_foreign_history_id_goes_back_to_the_history(world, edited):
    foreign = world.own_tag.history.first()
    response = login(world.operator).get(
        compare_url(edited), {"from": foreign.history_id, "to": edited.history.first().history_id}
    )
    assert response.status_code == 302
    assert response["Location"] == history_url(edited)


def test_compare_of_another_business_lines_tag_is_404(world):
    other = world.other_tag
    record = other.history.first()
    response = login(world.operator).get(
        compare_url(other), {"from": record.history_id, "to": record.history_id}
    )
    assert response.status_code == 404
    assert other.code not in response.content.decode()


def test_history_of_another_business_lines_tag_is_not_shown(world):
    other = world.other_tag
    response = login(world.operator).get(history_url(other))
    assert response.status_code in (403, 404)
    assert other.code not in response.content.decode()
    assert other.name not in response.content.decode()


def test_analyst_may_read_the_history_and_compare(world, edited):
    client = login(world.analyst)
    assert client.get(history_url(edited)).status_code == 200
    assert client.get(compare_url(edited)).status_code == 200


# --- published versions ------------------------------------------------------------------------


@pytest.fixture
def version(world):
    return publish_tag(world.own_tag, user=world.admin, note="首次发布")


def version_url(version, action="change"):
    return f"/admin/catalog/tagversion/{version.pk}/{action}/"


@pytest.mark.parametrize("role", ["admin", "steward", "operator"])
def test_published_version_is_read_only(world, version, role):
    client = login(getattr(world, role))
    response = client.get(version_url(version))
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert 'name="note"' not in html
    assert "首次发布" in html
    assert "到店次数" in html  # the snapshot, with Chinese unescaped
    assert f"/admin/catalog/tagversion/{version.pk}/delete/" not in html

    response = client.post(version_url(version), {"note": "改写历史", "version": "7"})
    assert response.status_code == 403
    assert client.post(version_url(version, "delete"), {"post": "yes"}).status_code == 403
    assert client.get("/admin/catalog/tagversion/add/").status_code == 403
    version.refresh_from_db()
    assert version.note == "首次发布" and version.version == 1
    assert TagVersion.objects.filter(pk=version.pk).exists()


def test_published_version_shows_in_the_tag_form_without_inputs(world, version):
    html = login(world.operator).get(f"/admin/catalog/tag/{world.own_tag.pk}/change/").content.decode()
    assert "首次发布" in html
    assert 'name="versions-0-note"' not in html
    assert 'name="versions-0-version"' not in html


def test_published_version_of_another_business_line_is_hidden(world):
    other_version = publish_tag(world.other_tag, user=world.admin, note="食品线发布")
    client = login(world.operator)
    response = client.get(version_url(other_version))
    assert response.status_code in (302, 404)
    assert "食品线发布" not in response.content.decode()
    listing = client.get("/admin/catalog/tagversion/").content.decode()
    assert world.other_tag.code not in listing


@pytest.mark.parametrize("who", ["analyst", "operator"])
def test_a_past_version_cannot_be_posted_back(world, who):
    """The page of a past version is for looking: posting it would put a published tag
    back to the draft it was, past the change requests that own every change."""
    tag = world.own_tag
    update_tag(None, tag, description="旧描述")
    past = tag.history.order_by("history_date", "history_id").last()
    update_tag(None, tag, description="新描述")
    publish_tag(tag)
    tag = Tag.objects.get(pk=tag.pk)
    client = login(getattr(world, who))
    url = f"{history_url(tag)}{past.history_id}/"
    assert client.get(url).status_code == 200  # looking is allowed
    assert client.post(url, change_data(tag, description="改回去")).status_code == 403
    tag = Tag.objects.get(pk=tag.pk)
    assert (tag.status, tag.description) == ("published", "新描述")
