"""Pages that show or edit a tag's rule: a published tag reads its rule as text and its
values as a table (no JSON); a draft tag's form and the propose form carry the rule
editor with what it needs (brand, value type, the check and sample URLs)."""

import json
import re

import pytest

from tagportal.catalog.services import publish_tag


def editor_config(html: str) -> dict:
    found = re.search(
        r'<script id="tp-rule-editor-config" type="application/json">(.*?)</script>', html, re.S
    )
    assert found, "no rule editor configuration on the page"
    return json.loads(found.group(1))


@pytest.fixture
def published(world):
    tag = world.own_tag
    tag.values = [{"code": "low", "label": "低频", "max": 2}, {"code": "high", "label": "高频", "min": 2}]
    tag.save()
    publish_tag(tag)
    return tag


def test_published_tag_shows_its_rule_as_text_and_values_as_a_table(client, world, published):
    client.force_login(world.operator)
    html = client.get(f"/admin/catalog/tag/{published.pk}/change/").content.decode()
    rule = re.search(r'<pre class="tp-rule-text" id="tp-rule-text">(.*?)</pre>', html, re.S).group(1)
    assert rule.startswith("metric: count(events where type = &quot;store_visit&quot;")
    assert '"agg"' not in html and "&quot;agg&quot;" not in html  # no JSON of the rule
    values = re.search(r'<table class="tp-values-view".*?</table>', html, re.S).group(0)
    assert "<td><code>low</code></td><td>低频</td>" in values and "<td>2</td>" in values
    assert "tp-rule-editor-config" not in html  # nothing to edit here


def test_draft_tag_form_carries_the_rule_editor(client, world):
    client.force_login(world.operator)
    html = client.get(f"/admin/catalog/tag/{world.own_tag.pk}/change/").content.decode()
    config = editor_config(html)
    assert config["brand"] == world.own_brand.code and config["tag"] == world.own_tag.pk
    assert config["value_type"] == "number" and config["value_type_input"] == "id_value_type"
    assert config["check_url"] == "/api/catalog/rules/check/"
    assert config["sample_url"] == "/api/engine/rules/sample/"
    assert "catalog/rule_editor.js" in html


def test_propose_form_carries_the_rule_editor_and_a_searchable_region_list(client, world, published):
    client.force_login(world.operator)
    html = client.get(f"/review/propose/{published.pk}/").content.decode()
    config = editor_config(html)
    assert config["target"] == "id_definition" and config["values_target"] == "id_values"
    assert config["strings"]["trySample"] == "Try on a sample"
    assert re.search(r'<select name="regions"[^>]*data-searchable', html)
    # the form posts the textarea the editor keeps in sync, as before
    assert 'name="definition"' in html
