"""The dictionary shows each tag's computed coverage, value distribution, drift and runs."""

import pytest
from django.utils import timezone

from tagportal.catalog.services import publish_tag
from tagportal.engine.models import TagComputation, TagRun


@pytest.fixture
def computed(world):
    tag = world.own_tag
    tag.values = [{"code": "low", "label": "低频", "max": 2}, {"code": "high", "label": "高频", "min": 2}]
    tag.save()
    publish_tag(tag)
    now = timezone.now()
    TagComputation.objects.create(
        tag=tag, version=1, population=1000, coverage=0.25, distribution={"low": 150, "high": 100},
        psi=0.31, drift_flag=True, last_calculated_at=now,
    )  # fmt: skip
    TagRun.objects.create(
        tag=tag, tag_version=1, brand=world.own_brand, status="failed", started_at=now, duration_s=0.4,
        error="definition.metric: boom",
    )  # fmt: skip
    return tag


def test_tag_page_shows_distribution_coverage_drift_and_runs(client, world, computed):
    client.force_login(world.steward)
    html = client.get(f"/admin/catalog/tag/{computed.pk}/change/").content.decode()
    assert 'id="tp-coverage">25.0%' in html
    assert "低频" in html and "150" in html and "高频" in html  # value labels, not codes
    assert "drift" in html
    assert "definition.metric: boom" in html  # the failed run in the history


def test_changelist_coverage_column_and_drift(client, world, computed):
    client.force_login(world.operator)
    html = client.get("/admin/catalog/tag/").content.decode()
    assert "25.0%" in html and "tp-drift" in html
    # another business line's computations are not shown to this operator
    assert world.other_tag.code not in html


def test_uncomputed_tag_says_so(client, world):
    client.force_login(world.steward)
    html = client.get(f"/admin/catalog/tag/{world.own_tag.pk}/change/").content.decode()
    assert "Not computed yet." in html
