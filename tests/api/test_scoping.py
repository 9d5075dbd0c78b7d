"""The base viewset restricts its queryset by the action a request needs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tagportal.catalog.services import grant_business_line
from tagportal.core.api_permissions import request_action

from ..conftest import client_for


@pytest.mark.parametrize(
    ("method", "view_action", "expected"),
    [
        ("GET", "list", "view"),
        ("HEAD", "retrieve", "view"),
        ("OPTIONS", "metadata", "view"),
        ("POST", "create", "add"),
        ("PUT", "update", "change"),
        ("PATCH", "partial_update", "change"),
        ("DELETE", "destroy", "delete"),
        ("POST", "apply", "change"),  # declared by the viewset
        ("GET", "suggest", "add"),  # declared, whatever the method
        ("POST", "run", None),  # declared: no model permission
    ],
)
def test_request_action(method, view_action, expected):
    view = SimpleNamespace(
        action=view_action, action_permissions={"apply": "change", "suggest": "add", "run": None}
    )
    assert request_action(SimpleNamespace(method=method), view) == expected


def test_options_offers_put_only_on_what_the_caller_may_change(world):
    """DRF's OPTIONS answer lists PUT when the caller may change the object: a tag of the
    own business line, not another line's tag the caller may only view."""
    grant_business_line(world.steward, world.other_line, "analysts")
    client = client_for(world.steward)
    own = client.options(f"/api/catalog/tags/{world.own_tag.pk}/")
    assert own.status_code == 200
    assert "PUT" in own.json()["actions"]
    other = client.options(f"/api/catalog/tags/{world.other_tag.pk}/")
    assert other.status_code == 200
    assert "PUT" not in other.json().get("actions", {})
