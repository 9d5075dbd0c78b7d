"""The OpenAPI document and the API docs pages, which must work offline (no CDN)."""

import json
import re
from html.parser import HTMLParser
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers
from rest_framework.test import APIClient

from tests.conftest import client_for

SIDECAR = "drf_spectacular_sidecar/swagger-ui-dist/"


@pytest.fixture(scope="module")
def schema(django_db_setup, django_db_blocker):
    """The JSON schema as served (generated once for the module: it takes seconds)."""
    with django_db_blocker.unblock():
        response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    return json.loads(response.content)


def test_schema_is_openapi_3(schema):
    assert re.match(r"^3\.\d+\.\d+$", schema["openapi"])
    assert schema["info"]["title"] == "TagPortal API"
    assert schema["info"]["version"] == "1"


def test_schema_default_format_is_yaml(db):
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.")


def test_schema_has_the_tag_paths(schema):
    paths = schema["paths"]
    expected = {
        "/api/catalog/tags/": {"get", "post"},
        "/api/catalog/tags/{id}/": {"get", "put", "patch", "delete"},
        "/api/catalog/tags/{id}/history/": {"get"},
        "/api/catalog/tags/{id}/diff/": {"get"},
        "/api/catalog/tags/{id}/versions/": {"get"},
        "/api/catalog/tags/suggest-code/": {"get"},
        "/api/catalog/versions/": {"get"},
        "/api/catalog/versions/{id}/": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, sorted(paths[path]))
    # versions are read-only
    assert not {"post", "put", "patch", "delete"} & set(paths["/api/catalog/versions/{id}/"])


def test_schema_documents_tag_filters_and_parameters(schema):
    listing = {p["name"] for p in schema["paths"]["/api/catalog/tags/"]["get"]["parameters"]}
    assert {
        "business_line",
        "brand",
        "region",
        "category",
        "kind",
        "value_type",
        "status",
        "owner",
    } <= listing
    assert {"search", "ordering", "page", "page_size"} <= listing
    diff = {p["name"] for p in schema["paths"]["/api/catalog/tags/{id}/diff/"]["get"]["parameters"]}
    assert {"from", "to"} <= diff
    suggest = {p["name"]: p for p in schema["paths"]["/api/catalog/tags/suggest-code/"]["get"]["parameters"]}
    assert suggest["name"]["required"] is True


def test_schema_describes_the_tag_component(schema):
    components = schema["components"]["schemas"]
    tag = components["Tag"]["properties"]
    assert {"code", "name", "brand", "category", "definition", "values", "status"} <= set(tag)
    assert tag["status"].get("readOnly") is True or "readOnly" in json.dumps(tag["status"])
    request = components["TagRequest"]
    assert "status" not in request["properties"]
    assert {"name", "brand", "category", "kind", "value_type"} <= set(request["required"])


def test_schema_declares_token_authentication(schema):
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("type") == "apiKey" and s.get("name") == "Authorization" for s in schemes.values()), (
        schemes
    )


class AssetParser(HTMLParser):
    """Collects the URLs of scripts, stylesheets and icons a page loads."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "script" and attrs.get("src"):
            self.urls.append(attrs["src"])
        elif tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])
        elif tag in ("img", "iframe") and attrs.get("src"):
            self.urls.append(attrs["src"])


def assets(html: str) -> list[str]:
    parser = AssetParser()
    parser.feed(html)
    return parser.urls


def assert_local_static(urls):
    static_url = "/" + settings.STATIC_URL.lstrip("/")
    assert urls
    for url in urls:
        parsed = urlparse(url)
        assert not parsed.scheme and not parsed.netloc, f"{url} is loaded from another host"
        assert url.startswith(static_url), url
        relative = parsed.path[len(static_url) :]
        assert finders.find(relative), f"{relative} is not a static file"


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_need_no_other_host(db, page):
    response = APIClient().get(page)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    urls = assets(html)
    assert_local_static(urls)
    # nor any script or stylesheet URL to another host anywhere in the page (inline config included)
    assert not re.search(r"""(?:src|href|url)\s*[=:(]\s*["']?(?:https?:)?//""", html), html
    assert "/api/schema/" in html


def test_swagger_ui_uses_the_sidecar(db):
    html = APIClient().get("/api/docs/").content.decode()
    urls = assets(html)
    static = "/" + settings.STATIC_URL.lstrip("/")
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css"):
        assert f"{static}{SIDECAR}{name}" in urls, (name, urls)
        assert finders.find(f"{SIDECAR}{name}")


def test_asset_check_rejects_a_cdn():
    """The check above would notice a CDN."""
    with pytest.raises(AssertionError):
        assert_local_static(["https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"])
    with pytest.raises(AssertionError):
        assert_local_static(["//unpkg.com/swagger-ui-dist/swagger-ui-bundle.js"])
    with pytest.raises(AssertionError):
        assert_local_static(["/static/drf_spectacular_sidecar/no-such-file.js"])


# ---------------------------------------------------------------------------
# Schema truth: nullable fields, pagination, error responses


def generated():
    """The schema as drf-spectacular generates it, and its component registry."""
    generator = SchemaGenerator()
    document = generator.get_schema(request=None, public=True)
    return document, generator.registry


def may_be_null(model, attrs) -> bool:
    """Whether reading ``attrs`` (a serializer field's source path) from a ``model``
    instance can give None: some field on the way is ``null=True``."""
    for attr in attrs:
        try:
            field = model._meta.get_field(attr)
        except FieldDoesNotExist:
            return False  # a property or a method: its own field declares it
        if field.many_to_many or field.one_to_many:
            return False
        if getattr(field, "null", False):
            return True
        if not field.is_relation:
            return False
        model = field.related_model
    return False


def marked_nullable(prop: dict) -> bool:
    text = json.dumps(prop)
    return '"nullable": true' in text or "NullEnum" in text


def unmarked_nullable_fields(document, registry) -> list[str]:
    """``Component.field`` of every response field whose model source can be null but
    that the schema does not mark nullable."""
    schemas = document["components"]["schemas"]
    found = []
    for (name, kind), component in registry._components.items():
        is_request = name.startswith("Patched") or (name.endswith("Request") and name[:-7] in schemas)
        if kind != "schemas" or name not in schemas or is_request:
            continue
        serializer = component.object
        if isinstance(serializer, type):
            serializer = serializer()
        if not isinstance(serializer, serializers.Serializer):
            continue
        model = getattr(getattr(serializer, "Meta", None), "model", None)
        if model is None:
            continue
        properties = schemas[name].get("properties", {})
        for field_name, field in serializer.fields.items():
            if field.write_only or field_name not in properties or field.source == "*":
                continue
            if isinstance(field, serializers.SerializerMethodField | serializers.ListSerializer):
                continue  # a method's type hint, a list: never null as a whole
            if may_be_null(model, field.source_attrs) and not marked_nullable(properties[field_name]):
                found.append(f"{name}.{field_name}")
    return sorted(found)


@pytest.fixture(scope="module")
def generated_schema(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        return generated()


def test_every_field_that_can_be_null_is_nullable(generated_schema):
    """Walks every model serializer of the schema: a field read through a ``null=True``
    model field (a foreign key not always set, a date not always known) is nullable."""
    assert unmarked_nullable_fields(*generated_schema) == []


def test_the_null_walk_notices_a_missing_allow_null(db, monkeypatch):
    from tagportal.governance.api.serializers import ChangeRequestSerializer

    field = ChangeRequestSerializer._declared_fields["reviewer"]
    assert field._kwargs["allow_null"] is True
    monkeypatch.setitem(field._kwargs, "allow_null", False)  # what each serializer copies
    assert "ChangeRequest.reviewer" in unmarked_nullable_fields(*generated())


@pytest.mark.parametrize(
    "component, field",
    [
        ("ChangeItem", "produced_version"),
        ("ChangeItem", "merge_target"),
        ("ChangeRequest", "reviewer"),
        ("ChangeRequest", "brand"),
        ("Customer", "merged_into"),
        ("Report", "business_line"),
        ("Report", "brand"),
        ("Report", "region"),
        ("Report", "requested_by"),
        ("ReportDetail", "brand"),
        ("DataSource", "last_loaded_at"),
        ("Audience", "repin_requested_by"),
        ("Audience", "owner"),
        ("AudienceDetail", "repin_requested_by"),
        ("TagVersion", "published_by"),
        ("TagComputation", "published_version"),
        ("MergeRecord", "undone_by"),
        ("ImportJob", "created_by"),
        ("Notification", "change_request"),
        ("TagValue", "computed_at"),
    ],
)
def test_fields_seen_null_under_fuzzing_are_nullable(schema, component, field):
    assert marked_nullable(schema["components"]["schemas"][component]["properties"][field])


def response_schema(schema, path, method="get", code="200"):
    return schema["paths"][path][method]["responses"][code]["content"]["application/json"]["schema"]


@pytest.mark.parametrize(
    "path, component",
    [
        ("/api/catalog/tags/{id}/versions/", "PaginatedTagVersionList"),
        ("/api/catalog/tags/{id}/history/", "PaginatedHistoryRecordList"),
        ("/api/governance/change-requests/{id}/comments/", "PaginatedCommentList"),
        ("/api/governance/change-requests/queue/", "PaginatedChangeRequestList"),
        ("/api/audiences/audiences/{id}/snapshots/", "PaginatedSnapshotList"),
        ("/api/catalog/tags/", "PaginatedTagList"),
    ],
)
def test_custom_lists_are_documented_paginated(schema, path, component):
    assert response_schema(schema, path) == {"$ref": f"#/components/schemas/{component}"}
    names = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
    assert {"page", "page_size"} <= names


def test_plain_lists_are_documented_as_arrays(schema):
    """Lists of a few rows that are not paginated say so."""
    for path in ("/api/catalog/templates/", "/api/governance/recertification/"):
        assert response_schema(schema, path)["type"] == "array", path
        assert "page_size" not in {p["name"] for p in schema["paths"][path]["get"].get("parameters", [])}


def test_detail_actions_do_not_document_list_filters(schema):
    """A tag's versions are not filtered by the dictionary's filters."""
    for path in ("/api/catalog/tags/{id}/versions/", "/api/governance/change-requests/{id}/comments/"):
        names = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert names == {"id", "page", "page_size"}, (path, names)


def test_page_parameters_are_bounded_in_the_schema(schema):
    parameters = {p["name"]: p["schema"] for p in schema["paths"]["/api/catalog/tags/"]["get"]["parameters"]}
    assert parameters["page_size"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}
    assert parameters["page"] == {"type": "integer", "minimum": 1}


def test_tag_versions_and_comments_are_paginated(world):
    from tagportal.catalog.services import publish_tag
    from tagportal.governance.models import ChangeRequest, Comment

    for note in ("一", "二", "三"):
        publish_tag(world.own_tag, note=note)
    client = client_for(world.analyst)
    body = client.get(f"/api/catalog/tags/{world.own_tag.pk}/versions/", {"page_size": 2}).json()
    assert body["count"] == 3
    assert [row["version"] for row in body["results"]] == [3, 2]
    assert "page=2" in body["next"]
    last = client.get(f"/api/catalog/tags/{world.own_tag.pk}/versions/", {"page_size": 2, "page": 2}).json()
    assert [row["version"] for row in last["results"]] == [1]

    cr = ChangeRequest.objects.create(
        title="t", business_line=world.own_line, brand=world.own_brand, proposer=world.operator
    )
    for text in ("a", "b"):
        Comment.objects.create(change_request=cr, author=world.operator, text=text)
    body = client_for(world.admin).get(f"/api/governance/change-requests/{cr.pk}/comments/").json()
    assert body["count"] == 2
    assert [row["text"] for row in body["results"]] == ["a", "b"]


@pytest.mark.parametrize("value", ["0", "-1", "abc", "1.5", "1001", "100000000000000000000", " ", "١"])
def test_a_bad_page_size_is_refused(world, value):
    response = client_for(world.admin).get("/api/catalog/tags/", {"page_size": value})
    assert response.status_code == 400, (value, response.content)
    assert "page_size" in response.json()
    assert "1000" in response.json()["page_size"][0]


@pytest.mark.parametrize("value", ["0", "-3", "abc", "99999999999999999999999"])
def test_a_bad_page_number_is_refused(world, value):
    response = client_for(world.admin).get("/api/catalog/tags/", {"page": value})
    assert response.status_code == 400, (value, response.content)
    assert "page" in response.json()


def test_good_page_parameters(world):
    client = client_for(world.admin)
    body = client.get("/api/catalog/tags/", {"page_size": "1"}).json()
    assert body["count"] == 2
    assert len(body["results"]) == 1
    assert client.get("/api/catalog/tags/", {"page_size": "1000", "page": "1"}).status_code == 200
    assert client.get("/api/catalog/tags/", {"page_size": "", "page": ""}).json()["count"] == 2
    assert len(client.get("/api/catalog/tags/", {"page_size": "1", "page": "last"}).json()["results"]) == 1
    past = client.get("/api/catalog/tags/", {"page": "3", "page_size": "1"})
    assert past.status_code == 404  # past the last page, as DRF answers
    assert "detail" in past.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def test_error_components(schema):
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["detail"]
    assert components["Error"]["properties"]["detail"] == {"type": "string"}
    assert components["ValidationError"]["type"] == "object"


def test_every_operation_documents_its_error_responses(schema):
    missing = []
    for path, method, operation in operations(schema):
        codes = set(operation["responses"])
        expected = {"401", "429"}
        if {} not in operation.get("security", [{}]):
            expected.add("403")
        if "{" in path:
            expected.add("404")
        if method in {"post", "put", "patch"}:
            expected |= {"400", "409"}
        if method == "delete":
            expected.add("409")
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            expected.add("400")
        if not expected <= codes:
            missing.append((method, path, sorted(expected - codes)))
    assert not missing, missing
    assert len(list(operations(schema))) > 100


def test_error_responses_use_the_shared_shapes(schema):
    error = {"$ref": "#/components/schemas/Error"}
    assert response_schema(schema, "/api/catalog/tags/{id}/", "get", "404") == error
    assert response_schema(schema, "/api/catalog/tags/{id}/", "delete", "409") == error
    assert response_schema(schema, "/api/catalog/tags/", "get", "429") == error
    assert response_schema(schema, "/api/catalog/tags/", "post", "400") == {
        "$ref": "#/components/schemas/ValidationError"
    }
    assert response_schema(schema, "/api/catalog/tags/", "get", "404") == error  # a page past the last
    # an operation's own 400 answer (the import job with its row report) is widened, not replaced
    own = response_schema(schema, "/api/profiles/import/", "post", "400")
    assert own["anyOf"] == [
        {"$ref": "#/components/schemas/ImportRefused"},
        {"$ref": "#/components/schemas/ValidationError"},
    ]


def test_the_documented_error_shapes_are_answered(world):
    """What the schema promises: ``detail`` for 403/404, field → messages for 400."""
    client = client_for(world.analyst)
    assert set(client.get("/api/catalog/tags/987654/").json()) == {"detail"}
    assert "detail" in client.delete(f"/api/catalog/tags/{world.own_tag.pk}/").json()
    refused = client_for(world.admin).post("/api/catalog/tags/", {}, format="json")
    assert refused.status_code == 400
    assert all(isinstance(messages, list) for messages in refused.json().values())


def test_a_validation_error_about_the_whole_request_is_an_object():
    from rest_framework.exceptions import ValidationError

    from tagportal.core.api import exception_handler

    response = exception_handler(ValidationError("Nope."), {})
    assert response.status_code == 400
    assert response.data == {"non_field_errors": ["Nope."]}


def test_the_schema_documents_the_own_model_scoring_contract(schema):
    """The score upload (multipart) and the scoring endpoint's request and response JSON."""
    upload = schema["paths"]["/api/predictive/models/{id}/scores/"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert {"201", "400", "403"} <= set(upload["responses"])
    test = schema["paths"]["/api/predictive/models/{id}/test-endpoint/"]["post"]
    assert "X-TagPortal-Signature" in test["description"]
    components = schema["components"]["schemas"]
    assert set(components["ScoringRequest"]["properties"]) == {"model", "batch", "rows"}
    assert set(components["ScoringResponse"]["properties"]) == {"scores"}
    model = components["PredictiveModel"]["properties"]
    assert "secret" not in model and model["secret_set"]["readOnly"]
