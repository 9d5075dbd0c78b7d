"""Reading a tag through the tag API counts a ``tag_read`` by the caller, viewing its page
in the portal a ``page_view``; listing the dictionary counts nothing, and neither does a
refused or failed read."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tagportal.catalog.models import TagAlias
from tagportal.core.days import beijing_today
from tagportal.usage.choices import UsageKind
from tagportal.usage.models import TagUsage, UsageBuffer
from tagportal.usage.services import aggregate

from ..conftest import client_for
from ..factories import TagFactory

URL = "/api/catalog/tags/"


def uses(kind) -> dict[tuple[int, int], int]:
    """``{(tag id, client): uses}`` of one kind, today, buffered uses included."""
    aggregate()
    rows = TagUsage.objects.filter(kind=kind, day=beijing_today())
    return {(u.tag_id, u.client): u.count for u in rows}


def usage_statements(queries) -> list[str]:
    return [q["sql"] for q in queries if "usage_usagebuffer" in q["sql"] or "usage_tagusage" in q["sql"]]


# ---------------------------------------------------------------------------
# The tag API


def test_reading_a_tag_counts_per_client(world):
    tag = world.own_tag
    for _ in range(2):
        assert client_for(world.analyst).get(f"{URL}{tag.pk}/").status_code == 200
    assert client_for(world.operator).get(f"{URL}{tag.pk}/").status_code == 200
    assert uses(UsageKind.TAG_READ) == {(tag.pk, world.analyst.pk): 2, (tag.pk, world.operator.pk): 1}


def test_a_read_is_one_insert_into_the_buffer(world):
    with CaptureQueriesContext(connection) as queries:
        assert client_for(world.analyst).get(f"{URL}{world.own_tag.pk}/").status_code == 200
    statements = usage_statements(queries)
    assert len(statements) == 1 and statements[0].startswith("INSERT"), statements
    assert list(UsageBuffer.objects.values_list("tag_id", "kind", "client")) == [
        (world.own_tag.pk, "tag_read", world.analyst.pk)
    ]


def test_listing_the_dictionary_is_not_a_use(world):
    response = client_for(world.admin).get(URL)
    assert response.status_code == 200 and response.json()["count"] == 2
    client_for(world.admin).get(URL, {"brand": world.own_brand.code})
    assert not UsageBuffer.objects.exists()
    assert uses(UsageKind.TAG_READ) == {}


def test_refused_reads_are_not_uses(world):
    # another business line's tag reads as not found
    assert client_for(world.analyst).get(f"{URL}{world.other_tag.pk}/").status_code == 404
    assert client_for(world.nobody).get(f"{URL}{world.own_tag.pk}/").status_code == 403
    assert Client().get(f"{URL}{world.own_tag.pk}/").status_code in (401, 403)
    assert client_for(world.analyst).get(f"{URL}lookup/", {"code": world.other_tag.code}).status_code == 404
    assert not UsageBuffer.objects.exists()


def test_lookup_counts_the_tag_found(world):
    client = client_for(world.analyst)
    response = client.get(f"{URL}lookup/", {"code": world.own_tag.code, "brand": world.own_brand.code})
    assert response.status_code == 200
    assert uses(UsageKind.TAG_READ) == {(world.own_tag.pk, world.analyst.pk): 1}


def test_lookup_of_a_merged_code_counts_the_tag_it_resolves_to(world):
    merged = TagFactory(brand=world.own_brand, category=world.category, code="yimei_visit_old_visits")
    TagAlias.objects.create(
        brand=world.own_brand, code="yimei_visit_old_visits_v0", source=merged, target=world.own_tag
    )
    response = client_for(world.analyst).get(
        f"{URL}lookup/", {"code": "yimei_visit_old_visits_v0", "brand": world.own_brand.code}
    )
    assert response.status_code == 200 and response.json()["notice"]
    assert uses(UsageKind.TAG_READ) == {(world.own_tag.pk, world.analyst.pk): 1}


@pytest.mark.parametrize("action", ["history", "versions", "diff"])
def test_history_versions_and_diff_count_a_read(world, action):
    tag = world.own_tag
    tag.description = "近30天到店次数"
    tag.save()
    first, second = sorted(tag.history.values_list("history_id", flat=True))[:2]
    params = {"from": first, "to": second} if action == "diff" else {}
    response = client_for(world.analyst).get(f"{URL}{tag.pk}/{action}/", params)
    assert response.status_code == 200, response.content
    assert uses(UsageKind.TAG_READ) == {(tag.pk, world.analyst.pk): 1}


def test_a_failed_diff_is_not_a_use(world):
    response = client_for(world.analyst).get(f"{URL}{world.own_tag.pk}/diff/", {"from": 1})
    assert response.status_code == 400
    assert not UsageBuffer.objects.exists()


def test_a_read_that_cannot_be_counted_still_answers(world, monkeypatch):
    from django.db import DatabaseError

    from tagportal.usage import services as usage

    def broken(*args, **kwargs):
        raise DatabaseError("the buffer is gone")

    monkeypatch.setattr(usage, "record", broken)
    response = client_for(world.analyst).get(f"{URL}{world.own_tag.pk}/")
    assert response.status_code == 200
    assert response.json()["code"] == world.own_tag.code


# ---------------------------------------------------------------------------
# The tag's page in the portal


def admin_client(user):
    client = Client()
    client.force_login(user)
    return client


def change_url(tag):
    return f"/admin/catalog/tag/{tag.pk}/change/"


def test_viewing_a_tag_page_counts_a_page_view(world):
    tag = world.own_tag
    assert admin_client(world.analyst).get(change_url(tag)).status_code == 200
    assert admin_client(world.analyst).get(change_url(tag)).status_code == 200
    assert admin_client(world.operator).get(change_url(tag)).status_code == 200
    assert uses(UsageKind.PAGE_VIEW) == {(tag.pk, world.analyst.pk): 2, (tag.pk, world.operator.pk): 1}
    assert uses(UsageKind.TAG_READ) == {}


def test_a_page_view_is_one_insert(world):
    client = admin_client(world.analyst)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(change_url(world.own_tag)).status_code == 200
    statements = usage_statements(queries)
    assert len(statements) == 1 and statements[0].startswith("INSERT"), statements


def test_pages_not_shown_are_not_page_views(world):
    # another business line's tag: the admin answers "not found" (404)
    assert admin_client(world.analyst).get(change_url(world.other_tag)).status_code == 404
    assert admin_client(world.nobody).get(change_url(world.own_tag)).status_code in (302, 403)
    assert Client().get(change_url(world.own_tag)).status_code == 302  # to the login page
    # the changelist lists the dictionary: not a use of its tags
    assert admin_client(world.analyst).get("/admin/catalog/tag/").status_code == 200
    assert not UsageBuffer.objects.exists()


def test_a_page_view_that_cannot_be_counted_still_shows_the_page(world, monkeypatch):
    from django.db import DatabaseError

    from tagportal.usage import services as usage

    def broken(*args, **kwargs):
        raise DatabaseError("the buffer is gone")

    monkeypatch.setattr(usage, "record", broken)
    response = admin_client(world.analyst).get(change_url(world.own_tag))
    assert response.status_code == 200
    assert world.own_tag.code in response.content.decode()
