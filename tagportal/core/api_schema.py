"""The OpenAPI document's error responses: every operation documents the 4xx answers it
can give (a postprocessing hook of drf-spectacular, so no viewset has to repeat them),
in the shapes ``tagportal.core.api.exception_handler`` answers.

- 400: a request body or query parameters were refused (``ValidationError``: field name
  → messages; ``detail`` or ``non_field_errors`` for the request as a whole);
- 401: no or a wrong token; 403: not allowed (authenticated operations);
- 404: what the path names is missing or not visible, or a page past the last one
  (operations with path parameters, paginated lists, and those that say so themselves);
- 409: a write conflicts with the current state (writes);
- 429: too many requests (every operation is throttled).

An operation that already documents one of these codes keeps its own answer, widened
with the standard shape (``anyOf``) since the standard errors can be answered too.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

ERROR = "Error"
VALIDATION_ERROR = "ValidationError"
WRITES = {"post", "put", "patch", "delete"}
METHODS = WRITES | {"get", "head", "options", "trace"}


class ErrorSerializer(serializers.Serializer):
    """Every error other than refused input: a message in ``detail``, sometimes with
    more fields (a 409 names what is in the way)."""

    detail = serializers.CharField()


#: For a view that answers 404 without a path parameter (a lookup by code or identity).
NOT_FOUND = OpenApiResponse(ErrorSerializer, description=_("Not found, or not visible to you."))

DESCRIPTIONS = {
    "400": _("The request was refused: each field names its problems."),
    "401": _("Not authenticated: no token, or an unknown one."),
    "403": _("You may not do this."),
    "404": _("Not found, or not visible to you."),
    "409": _("Conflicts with the current state."),
    "429": _("Too many requests: wait (see Retry-After) and try again."),
}


def _component_schemas() -> dict:
    return {
        ERROR: {
            "type": "object",
            "description": "a message in ``detail``, sometimes with more fields (a 409 names what is in the way)",
            "properties": {"detail": {"type": "string"}},
            "required": ["detail"],
            "additionalProperties": {},
        },
        VALIDATION_ERROR: {
            "type": "object",
            "description": "field name → its problems (a list of messages, or of nested field problems); "
            "``detail`` or ``non_field_errors`` for the request as a whole",
            "additionalProperties": {},
        },
    }


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _codes(method: str, operation: dict, paginated: bool) -> list[str]:
    parameters = operation.get("parameters", [])
    has_path = any(p.get("in") == "path" for p in parameters)
    has_query = any(p.get("in") == "query" for p in parameters)
    anonymous = {} in operation.get("security", [{}])
    codes = []
    if (method in WRITES and method != "delete") or has_query or "requestBody" in operation:
        codes.append("400")
    codes.append("401")
    if not anonymous:
        codes.append("403")
    if has_path or paginated:
        codes.append("404")
    if method in WRITES and not anonymous:
        codes.append("409")
    codes.append("429")
    return codes


def _paginated(operation: dict, schemas: dict) -> bool:
    for response in operation.get("responses", {}).values():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        name = schema.get("$ref", "").rsplit("/", 1)[-1]
        if name.startswith("Paginated") and "results" in schemas.get(name, {}).get("properties", {}):
            return True
    return False


def _widen(response: dict, name: str) -> None:
    for media in response.get("content", {}).values():
        schema = media.get("schema")
        if schema and schema != _ref(name) and _ref(name) not in schema.get("anyOf", []):
            media["schema"] = {"anyOf": [schema, _ref(name)]}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the standard 4xx responses of every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_component_schemas())
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code in _codes(method, operation, _paginated(operation, schemas)):
                name = VALIDATION_ERROR if code == "400" else ERROR
                if code in responses:
                    _widen(responses[code], name)
                    continue
                responses[code] = {
                    "description": str(DESCRIPTIONS[code]),
                    "content": {"application/json": {"schema": _ref(name)}},
                }
    return result
