"""Fixtures every test folder uses: the ``world`` of two business lines, their brands,
tags and one user per role, and API clients.

A module whose database tests all use ``world`` (and none needs real transactions)
shares one world between its tests: it is made once, inside a transaction that stays
open for the module and is rolled back after its last test, and each test runs in a
savepoint within it (pytest-django's ``db``), so what a test writes is gone before the
next one; each test gets its own objects, read again from the database."""

import sys
from collections import defaultdict

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import translation
from rest_framework.test import APIClient

from tagportal.core.roles import ADMIN, ANALYST, OPERATOR, STEWARD

from .factories import BrandFactory, BusinessLineFactory, CategoryFactory, TagFactory, UserFactory


@pytest.fixture(autouse=True)
def english_by_default(settings):
    """Each test starts in the settings' language: a request with a Chinese
    Accept-Language activates Chinese for the rest of the thread."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


class World:
    """The objects of :func:`make_world`, as attributes."""

    def references(self) -> dict:
        """``{attribute: (model, pk)}`` of the objects, to read them again."""
        return {name: (type(obj), obj.pk) for name, obj in vars(self).items()}

    @classmethod
    def read(cls, references: dict) -> "World":
        """Fresh objects of :meth:`references` from the database."""
        w = cls()
        for name, (model, pk) in references.items():
            setattr(w, name, model._default_manager.get(pk=pk))
        return w


def make_world() -> World:
    """Two business lines, each with a brand and a tag, and one user per role granted
    the first business line ("own"), plus an admin. The second one is "other"."""
    w = World()
    w.own_line = BusinessLineFactory(code="yimei", name="医美")
    w.other_line = BusinessLineFactory(code="shipin", name="食品饮料")
    w.own_brand = BrandFactory(code="ruiyan", name="瑞颜", business_line=w.own_line)
    w.other_brand = BrandFactory(code="qingquan", name="清泉", business_line=w.other_line)
    w.category = CategoryFactory(code="visit", name="到店行为")
    w.own_tag = TagFactory(
        brand=w.own_brand, category=w.category, name="到店次数", code="yimei_visit_dao_dian_ci_shu"
    )
    w.other_tag = TagFactory(
        brand=w.other_brand, category=w.category, name="购买次数", code="shipin_visit_gou_mai_ci_shu"
    )
    w.operator = UserFactory(username="op", role=OPERATOR, grants=[(w.own_line, "operators")])
    w.steward = UserFactory(username="st", role=STEWARD, grants=[(w.own_line, "stewards")])
    w.analyst = UserFactory(username="an", role=ANALYST, grants=[(w.own_line, "analysts")])
    w.admin = UserFactory(username="ad", role=ADMIN)
    w.nobody = UserFactory(username="nobody")
    return w


#: Paths of the test modules that share one world between their tests.
_SHARED_WORLD: set = set()
_TRANSACTIONAL = {"transactional_db", "live_server", "django_db_reset_sequences"}


def pytest_collection_modifyitems(config, items):
    """A module shares its world when each of its tests that uses the database asks
    for ``world`` and none needs real transactions (``transaction=True``, a live server)."""
    uses = defaultdict(set)
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        marker = item.get_closest_marker("django_db")
        transactional = bool(names & _TRANSACTIONAL) or bool(marker and marker.kwargs.get("transaction"))
        if transactional:
            uses[item.path].add("transactional")
        elif "world" in names:
            uses[item.path].add("world")
        elif marker or "db" in names:
            uses[item.path].add("db")
    _SHARED_WORLD.clear()
    _SHARED_WORLD.update(path for path, kinds in uses.items() if kinds == {"world"})


def in_module_transaction(django_db_blocker, build):
    """For a module-scoped fixture (``yield from``): ``build()`` run in a transaction
    opened for the test module and rolled back after its last test, which each run in
    a savepoint within it. The database stays blocked between tests as usual."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            with translation.override(settings.LANGUAGE_CODE):
                made = build()
        except BaseException:
            atomic.__exit__(*sys.exc_info())
            raise
    try:
        yield made
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@pytest.fixture(scope="module")
def world_of_module(request, django_db_setup, django_db_blocker):
    """The references of the module's shared world, or ``None`` if it has none."""
    if request.node.path not in _SHARED_WORLD:
        yield None
        return
    yield from in_module_transaction(django_db_blocker, lambda: make_world().references())


@pytest.fixture
def world(world_of_module, db):
    """:func:`make_world`: the module's shared one read again, or one made for the test."""
    if world_of_module is None:
        return make_world()
    return World.read(world_of_module)


@pytest.fixture
def api():
    return APIClient()


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client
