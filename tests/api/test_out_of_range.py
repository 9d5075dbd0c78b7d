"""Out-of-range and malformed numbers in query strings: never a 500.

Every API list (found from the URL conf, as tests/api/test_contract_coverage.py finds
the viewsets) gets every filter of its filterset with a number too large and too small
for any database column, an overflowing float, a word and nothing; then the cases the
fuzzing found, which must be a 400 that names the parameter."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from tagportal.catalog.services import publish_tag
from tagportal.core.filters import INT64_MAX, FilterBackend, FilterSet, id_or_none, parse_int

from ..conftest import client_for

HUGE = "99999999999999999999"
BAD_VALUES = [HUGE, "-" + HUGE, "1e309", "abc", ""]


def list_routes() -> dict[str, type]:
    """``{url: viewset}`` of every API list (a viewset route answering GET with ``list``)."""
    found: dict[str, type] = {}

    def walk(patterns, prefix: str):
        for pattern in patterns:
            route = prefix + str(pattern.pattern).replace("^", "").replace("$", "")
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/") and "(?P" not in route:
                actions = getattr(pattern.callback, "actions", None) or {}
                if actions.get("get") == "list":
                    found.setdefault("/" + route, pattern.callback.cls)

    walk(get_resolver().url_patterns, "")
    return found


ROUTES = list_routes()


def filter_names(viewset: type) -> list[str]:
    """The filters of the viewset's filterset, as the filter backend builds it."""
    view = viewset()
    view.action = "list"
    queryset = getattr(viewset, "queryset", None)
    if queryset is None:
        return []
    filterset_class = FilterBackend().get_filterset_class(view, queryset.all())
    return sorted(filterset_class.base_filters) if filterset_class else []


def test_the_routes_are_found():
    assert {"/api/catalog/tags/", "/api/governance/change-requests/", "/api/catalog/versions/"} <= set(ROUTES)
    assert len(ROUTES) >= 15, sorted(ROUTES)
    assert "min_age_days" in filter_names(ROUTES["/api/governance/change-requests/"])


def test_every_api_filterset_is_bounded():
    """A filterset not built on the core base would let a huge number through again."""
    for url, viewset in ROUTES.items():
        declared = getattr(viewset, "filterset_class", None)
        if declared is not None:
            assert issubclass(declared, FilterSet), f"{url}: {declared.__name__} is not a core FilterSet"


@pytest.mark.parametrize("url", sorted(ROUTES))
def test_no_filter_value_is_a_server_error(world, url):
    client = client_for(world.admin)
    names = [*filter_names(ROUTES[url]), "page", "page_size", "ordering", "search"]
    failures = []
    for name in names:
        for value in BAD_VALUES:
            response = client.get(url, {name: value})
            if response.status_code >= 500:
                failures.append((name, value, response.status_code))
    assert not failures


# ---------------------------------------------------------------------------
# The cases found, each a 400 naming the parameter


CR_URL = "/api/governance/change-requests/"


@pytest.mark.parametrize("value", ["99999999", HUGE, "-1", "1.5"])
def test_min_age_days_out_of_range_is_400(world, value):
    for url in (CR_URL, CR_URL + "queue/"):
        response = client_for(world.steward).get(url, {"min_age_days": value})
        assert response.status_code == 400, (url, response.content)
        assert "min_age_days" in response.json()


def test_min_age_days_in_range_filters(world):
    response = client_for(world.steward).get(CR_URL, {"min_age_days": "36525"})
    assert response.status_code == 200 and response.json()["count"] == 0


@pytest.mark.parametrize(
    "url, name",
    [(CR_URL, "tag"), ("/api/catalog/tags/", "category"), ("/api/catalog/versions/", "tag")],
)
@pytest.mark.parametrize("value", [HUGE, "-" + HUGE])
def test_id_filters_out_of_range_are_400(world, url, name, value):
    response = client_for(world.admin).get(url, {name: value})
    assert response.status_code == 400, response.content
    assert name in response.json()


def test_an_id_filter_in_range_but_unknown_finds_nothing(world):
    response = client_for(world.admin).get(CR_URL, {"tag": str(INT64_MAX)})
    assert response.status_code == 200 and response.json()["count"] == 0


@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "1e309", "0"])
def test_tag_diff_out_of_range_is_400(world, value):
    publish_tag(world.own_tag)
    url = f"/api/catalog/tags/{world.own_tag.pk}/diff/"
    for params in ({"from": value, "to": value}, {"from": "1", "to": value}):
        response = client_for(world.admin).get(url, params)
        assert response.status_code == 400, response.content
        assert "from" in response.json()["detail"]


def test_export_ids_out_of_range_match_nothing(world):
    response = client_for(world.admin).get(
        "/api/catalog/tags/export/", {"brand": HUGE, "business_line": HUGE, "format": "csv"}
    )
    assert response.status_code == 200
    assert world.own_tag.code not in response.content.decode("utf-8-sig")


def test_a_body_list_of_huge_ids_is_not_a_server_error(world):
    response = client_for(world.operator).post(
        "/api/governance/notifications/mark-read/", {"ids": [int(HUGE)]}, format="json"
    )
    assert response.status_code < 500


@pytest.mark.parametrize("value", [HUGE, "-" + HUGE, "1e309"])
def test_path_ids_out_of_range_are_404(world, value):
    for url in (f"/api/catalog/tags/{value}/", f"{CR_URL}{value}/", f"/api/catalog/tags/{value}/diff/"):
        assert client_for(world.admin).get(url).status_code == 404


# ---------------------------------------------------------------------------
# Portal pages


@pytest.mark.parametrize(
    "url, params",
    [
        ("/review/", {"min_age": HUGE}),
        ("/review/all/", {"min_age": "99999999"}),
        ("/audiences/", {"business_line": HUGE, "brand": HUGE}),
        ("/lineage/", {"tag": HUGE}),
        ("/admin/catalog/tag/add/", {"owner": "1e309", "category": HUGE}),
    ],
)
def test_pages_never_answer_500(client, world, url, params):
    client.force_login(world.admin)
    response = client.get(url, params)
    assert response.status_code in (200, 400, 404), response.status_code  # 404: no such tag


def test_the_review_queue_shows_the_range_at_the_field(client, world):
    client.force_login(world.steward)
    response = client.get("/review/", {"min_age": HUGE})
    assert response.status_code == 200
    assert response.context["form"].errors["min_age"]


def test_an_admin_lookup_out_of_range_is_a_400_page(client, world):
    """A changelist filter the admin passes to the database as is: the middleware's 400."""
    client.force_login(world.admin)
    response = client.get("/admin/catalog/tag/", {"brand": HUGE})
    assert response.status_code == 400
    assert "out of range" in response.content.decode()


# ---------------------------------------------------------------------------
# The helpers


def test_parse_int_and_id_or_none():
    assert parse_int(" 42 ", "n") == 42
    assert parse_int("", "n", required=False) is None
    for bad in ("", "abc", "1e309", HUGE, "4.5"):
        with pytest.raises(Exception) as exc:
            parse_int(bad, "n", max_value=100)
        assert "n" in exc.value.message_dict
    assert id_or_none("12") == 12 and id_or_none(str(INT64_MAX)) == INT64_MAX
    for bad in (HUGE, str(INT64_MAX + 1), "-1", "1e3", "", None, "x" * 5000):
        assert id_or_none(bad) is None
