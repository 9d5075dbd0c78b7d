"""Every viewset under /api/ has a contract test, and every model-backed one is scoped
by the base viewset: a new viewset cannot be added untested or unscoped."""

from __future__ import annotations

import importlib
from pathlib import Path

from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve

from tagportal.core.api import RestrictedViewSetMixin

from .contract import Resource

TESTS = Path(__file__).resolve().parent.parent


def registered_viewsets() -> dict[type, str]:
    """``{viewset class: route}`` of every viewset routed under ``api/``."""
    found: dict[type, str] = {}

    def walk(patterns, prefix: str):
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern) and route.startswith("api/"):
                callback = pattern.callback
                if getattr(callback, "actions", None) is not None:  # a ViewSet, not an APIView
                    found.setdefault(callback.cls, route.replace("^", "").replace("$", ""))

    walk(get_resolver().url_patterns, "")
    return found


def contract_classes() -> list[type]:
    """The contract test classes of every test module that uses ``tests/api/contract.py``."""
    for path in sorted(TESTS.rglob("test_*.py")):
        if "contract import" in path.read_text(encoding="utf-8"):
            module = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts)
            importlib.import_module(module)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return [cls for cls in subclasses(Resource) if cls.__name__.startswith("Test")]


def viewset_of(contract: type) -> type:
    """The viewset a contract class speaks to: the one its list URL (or, for a resource
    without a list, its detail URL) resolves to."""
    for url in (contract.url, contract().detail_url(1)):
        try:
            return resolve(url).func.cls
        except Resolver404:
            continue
    raise AssertionError(f"{contract.__name__}: {contract.url} is not routed")


def test_the_router_lists_the_api():
    """A sanity check of the walk itself: the well-known viewsets are found."""
    from tagportal.audiences.api.views import AudienceViewSet
    from tagportal.catalog.api.views import TagViewSet, TemplateViewSet
    from tagportal.lineage.api.views import TagInputsViewSet

    routes = registered_viewsets()
    assert {TagViewSet, TemplateViewSet, AudienceViewSet, TagInputsViewSet} <= set(routes)
    assert len(routes) >= 20, sorted(routes.values())


def test_every_viewset_has_a_contract_test():
    covered = {viewset_of(contract) for contract in contract_classes()}
    missing = {route for viewset, route in registered_viewsets().items() if viewset not in covered}
    assert not missing, f"viewsets without a contract test (see tests/api/contract.py): {sorted(missing)}"


def test_every_model_viewset_is_scoped_by_the_base_viewset():
    """A viewset with a model queryset restricts it by the request's action; one
    without (an inbox, a template list) scopes in its own code."""
    unscoped = sorted(
        route
        for viewset, route in registered_viewsets().items()
        if getattr(viewset, "queryset", None) is not None and not issubclass(viewset, RestrictedViewSetMixin)
    )
    assert not unscoped, unscoped
