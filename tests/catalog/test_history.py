"""Version history: every change recorded with its author, and readable diffs."""

import pytest

from tagportal.catalog.history import changed_field_names, compare_records
from tagportal.catalog.services import update_tag

from ..factories import RegionFactory, TagFactory, UserFactory


@pytest.mark.django_db
def test_diff_between_any_two_versions():
    user = UserFactory(username="editor", display_name="编辑 小王")
    tag = TagFactory(name="到店次数", description="旧描述")
    china = RegionFactory(code="cn", name="中国")
    update_tag(None, tag, description="新描述", reason="修正描述")
    tag.regions.set([china])
    definition = dict(tag.definition)
    definition["metric"] = {**definition["metric"], "window": {"last_days": 30}}
    tag._history_user = user
    update_tag(None, tag, definition=definition, name="近30天到店次数")
    records = list(tag.history.order_by("history_date", "history_id"))
    assert len(records) >= 4
    first, last = records[0], records[-1]
    changes = {c.name: c for c in compare_records(first, last)}
    assert changes["description"].old == "旧描述" and changes["description"].new == "新描述"
    assert changes["name"].changed and changes["name"].new == "近30天到店次数"
    assert changes["regions"].old == "—" and changes["regions"].new == "中国"
    assert changes["definition"].changed
    assert ("-", '      "last_days": 90') in changes["definition"].lines
    assert ("+", '      "last_days": 30') in changes["definition"].lines
    assert not changes["code"].changed
    assert changes["category"].old == str(tag.category)  # foreign keys shown by name
    assert changes["kind"].old == "Behaviour"  # choices shown by label
    assert last.history_user == user
    assert "definition" in changed_field_names(records[-2], last)
    assert records[1].history_change_reason == "修正描述"


def test_the_module_examples_hold():
    """The examples in :mod:`tagportal.catalog.history`'s docstring are what it does."""
    import doctest

    from tagportal.catalog import history

    result = doctest.testmod(history)
    assert result.attempted >= 2 and result.failed == 0


@pytest.mark.django_db
def test_changed_fields_and_comparison_agree_with_simple_history():
    tag = TagFactory(name="到店次数", unit="")
    update_tag(None, tag, unit="次", name="近30天到店次数")
    first, last = tag.history.order_by("history_date", "history_id")
    assert set(last.diff_against(first).changed_fields) == {"unit", "name"}
    assert changed_field_names(first, last) == ["name", "unit"]  # the model's order
    changed = [c.name for c in compare_records(first, last) if c.changed]
    assert changed == ["name", "unit"]
    assert changed_field_names(None, first) == []
