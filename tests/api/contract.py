"""A reusable contract for the REST API, in the style of NetBox's ``utilities/testing/api.py``.

A test class describes one resource and mixes in the checks that apply to it::

    class TestBrands(Resource, ReadContract, ScopedContract, WriteContract, ProtectedDeleteContract):
        url = "/api/catalog/brands/"
        model = Brand

        def user(self, world): ...            # who performs the checks
        def permitted(self, world): ...       # an object that user may view (and change)
        def other(self, world): ...           # another brand's / business line's object
        def create_data(self, world): ...
        def update_data(self, world): ...
        def deletable(self, world, user): ...  # an object nothing refers to
        def protected(self, world): ...       # an object a PROTECT foreign key refers to

Each hook receives the ``world`` fixture of ``tests/conftest.py``. ``create_data`` and
``update_data`` are written in the API's own terms (slugs, ids), and the contract
compares them with what the API answers when the object is fetched again from the
database, so a value that is accepted but not stored fails.

Optional hooks: ``read_only_user`` (default: the analyst), ``grant_view_of_other`` (let
the user view the other object but not change it), ``list_params``, ``key`` / ``key_of``
and ``id_field`` (how the API names an object), ``paginated``, ``assert_deleted``.

A resource that offers only some of the routes mixes in the parts it has:
``ListContract`` and ``DetailContract`` (together ``ReadContract``); ``CreateContract``,
``UpdateContract``, ``DeleteContract`` and ``UnauthenticatedWriteContract`` (together
``WriteContract``); ``ScopedListContract``, ``ScopedDetailContract``,
``ScopedUpdateContract``, ``ScopedDeleteContract`` (another scope's object is 404, one
only viewable is 403 on writes); ``ReadOnlyRoleContract`` (an analyst may view but gets
403 on writes) and ``ReadOnlyContract`` (no writes at all). Every viewset under ``/api/``
has such a class: ``tests/api/test_contract_coverage.py`` fails otherwise.
"""

from __future__ import annotations

import json

from rest_framework.test import APIClient

from tagportal.catalog.services import grant_business_line
from tests.conftest import client_for

UNKNOWN_PK = 987654321


def once(world, name, make):
    """Build a fixture object once per test (hooks may be called several times)."""
    if not hasattr(world, name):
        setattr(world, name, make())
    return getattr(world, name)


class Resource:
    """What a contract needs to know about one endpoint."""

    url: str
    model: type
    #: Fields of the create/update data that the API does not echo back as sent.
    write_only_fields: tuple[str, ...] = ()
    #: Whether the list answers DRF's page (``count``, ``results``) or a bare list.
    paginated: bool = True
    #: The field that names an object in the API's answers.
    id_field: str = "id"

    def user(self, world):
        return world.admin

    def read_only_user(self, world):
        """Someone who may view the permitted object but change nothing (an analyst)."""
        return world.analyst

    def grant_view_of_other(self, world, user):
        """Let ``user`` view, but not change, the other object."""
        grant_business_line(user, world.other_line, "analysts")

    def list_params(self, world) -> dict:
        """Query parameters every list request needs."""
        return {}

    def permitted(self, world):
        raise NotImplementedError

    def other(self, world):
        raise NotImplementedError

    def create_data(self, world) -> dict:
        raise NotImplementedError

    def update_data(self, world) -> dict:
        raise NotImplementedError

    def deletable(self, world, user):
        raise NotImplementedError

    def protected(self, world):
        raise NotImplementedError

    # helpers ---------------------------------------------------------------
    def client(self, world):
        return client_for(self.user(world))

    def detail_url(self, pk) -> str:
        return f"{self.url}{pk}/"

    def key(self, obj):
        """How the API names ``obj`` in its answers (the ``id_field``) and its URLs."""
        return obj.pk

    def key_of(self, body: dict):
        """The key of the object a list row or a detail answer is about."""
        return body[self.id_field]

    def rows(self, response) -> list:
        body = response.json()
        return body["results"] if self.paginated else body

    def keys(self, response) -> set:
        return {self.key_of(row) for row in self.rows(response)}

    def count(self) -> int:
        return self.model._default_manager.count()

    def snapshot(self, obj) -> dict:
        """The stored fields of ``obj``, to prove a refused request changed nothing."""
        fresh = type(obj)._default_manager.get(pk=obj.pk)
        return {f.attname: getattr(fresh, f.attname) for f in fresh._meta.concrete_fields}

    def assert_deleted(self, world, user, obj):
        """What a successful delete leaves: the object gone, its detail 404."""
        assert not self.model._default_manager.filter(pk=obj.pk).exists()
        again = client_for(user).get(self.detail_url(obj.pk))
        assert again.status_code == 404

    def assert_matches(self, payload: dict, data: dict):
        """Every field of ``data`` reads back as it was written."""
        for key, value in data.items():
            if key in self.write_only_fields:
                continue
            assert key in payload, f"{key!r} missing from {sorted(payload)}"
            assert payload[key] == value, f"{key}: sent {value!r}, stored {payload[key]!r}"


def _assert_paginated(response):
    body = response.json()
    assert set(body) >= {"count", "next", "previous", "results"}, body
    assert isinstance(body["results"], list)
    assert body["count"] >= len(body["results"])


def _assert_unauthenticated(response, key, url):
    # Token authentication comes first, so DRF answers 401 with a challenge.
    assert response.status_code == 401, (url, response.status_code)
    assert response.headers.get("WWW-Authenticate", "").startswith("Token")
    assert str(key) not in json.dumps(response.json())


class ListContract:
    """The list: 200, paginated, the permitted object is there; no anonymous reads."""

    def test_list(self, world):
        obj = self.permitted(world)
        response = self.client(world).get(self.url, self.list_params(world))
        assert response.status_code == 200, response.content
        if self.paginated:
            _assert_paginated(response)
        assert self.key(obj) in self.keys(response)

    def test_unauthenticated_read(self, world):
        obj = self.permitted(world)
        response = APIClient().get(self.url, self.list_params(world))
        _assert_unauthenticated(response, self.key(obj), self.url)


class DetailContract:
    """The detail: 200 for the permitted object, 404 for an unknown one; no anonymous reads."""

    def test_detail(self, world):
        obj = self.permitted(world)
        response = self.client(world).get(self.detail_url(self.key(obj)))
        assert response.status_code == 200, response.content
        assert self.key_of(response.json()) == self.key(obj)

    def test_detail_of_unknown_object_is_404(self, world):
        response = self.client(world).get(self.detail_url(UNKNOWN_PK))
        assert response.status_code == 404

    def test_unauthenticated_detail(self, world):
        obj = self.permitted(world)
        url = self.detail_url(self.key(obj))
        _assert_unauthenticated(APIClient().get(url), self.key(obj), url)


class ReadContract(ListContract, DetailContract):
    """List and detail."""


class ScopedListContract:
    """Another brand's (business line's) object is not listed."""

    def test_list_hides_other_scope(self, world):
        obj, other = self.permitted(world), self.other(world)
        response = self.client(world).get(self.url, {**self.list_params(world), "page_size": 1000})
        assert response.status_code == 200
        keys = self.keys(response)
        assert self.key(obj) in keys
        assert self.key(other) not in keys
        if self.paginated:
            assert response.json()["count"] == len(keys)


class ScopedDetailContract:
    """Another brand's (business line's) object answers 404: it does not exist for the caller."""

    def test_detail_of_other_scope_is_404(self, world):
        other = self.other(world)
        response = self.client(world).get(self.detail_url(self.key(other)))
        assert response.status_code == 404


class ScopedContract(ScopedListContract, ScopedDetailContract):
    """Another brand's (business line's) object is invisible: not listed, 404 in detail."""


class CreateContract:
    """Create, checked against the database."""

    def test_create(self, world):
        data = self.create_data(world)
        before = self.count()
        response = self.client(world).post(self.url, data, format="json")
        assert response.status_code == 201, response.content
        pk = response.json()["id"]
        assert self.model._default_manager.filter(pk=pk).exists()
        assert self.count() == before + 1
        # Read it back as the admin: the creator of a top-level scope (a business line)
        # holds no grant on it yet, so may not be able to view it.
        stored = client_for(world.admin).get(self.detail_url(pk))
        assert stored.status_code == 200
        self.assert_matches(stored.json(), data)


class UpdateContract:
    """Update, checked against the database; an unknown object is 404."""

    def test_update(self, world):
        obj = self.permitted(world)
        data = self.update_data(world)
        response = self.client(world).patch(self.detail_url(obj.pk), data, format="json")
        assert response.status_code == 200, response.content
        self.assert_matches(response.json(), data)
        stored = self.client(world).get(self.detail_url(obj.pk))
        self.assert_matches(stored.json(), data)
        obj.refresh_from_db()
        for key, value in data.items():
            field = obj._meta.get_field(key)
            if not field.is_relation and key not in self.write_only_fields:
                assert getattr(obj, key) == value, key

    def test_update_unknown_object_is_404(self, world):
        response = self.client(world).patch(
            self.detail_url(UNKNOWN_PK), self.update_data(world), format="json"
        )
        assert response.status_code == 404


class DeleteContract:
    """Delete: 204, and the object is gone (``assert_deleted``)."""

    def test_delete(self, world):
        user = self.user(world)
        obj = self.deletable(world, user)
        response = client_for(user).delete(self.detail_url(obj.pk))
        assert response.status_code == 204, response.content
        self.assert_deleted(world, user, obj)


class UnauthenticatedWriteContract:
    """No anonymous writes: 401, nothing changed."""

    def test_unauthenticated_write(self, world):
        obj = self.permitted(world)
        before_count = self.count()
        before = self.client(world).get(self.detail_url(obj.pk)).json()
        anonymous = APIClient()
        assert anonymous.post(self.url, self.create_data(world), format="json").status_code == 401
        assert (
            anonymous.patch(self.detail_url(obj.pk), self.update_data(world), format="json").status_code
            == 401
        )
        assert anonymous.delete(self.detail_url(obj.pk)).status_code == 401
        assert self.count() == before_count
        after = self.client(world).get(self.detail_url(obj.pk)).json()
        assert after == before


class WriteContract(CreateContract, UpdateContract, DeleteContract, UnauthenticatedWriteContract):
    """Create, update and delete, each checked against the database."""


class ScopedUpdateContract:
    """Updating another scope's object answers 404 (it does not exist for the caller);
    updating one the caller may view but not change answers 403. Nothing changes."""

    def test_update_of_other_scope_is_404(self, world):
        other = self.other(world)
        before = self.snapshot(other)
        response = self.client(world).patch(self.detail_url(other.pk), self.update_data(world), format="json")
        assert response.status_code == 404
        assert self.snapshot(other) == before

    def test_update_of_object_only_viewable_is_403(self, world):
        other, user = self.other(world), self.user(world)
        self.grant_view_of_other(world, user)
        client = client_for(user)
        assert client.get(self.detail_url(other.pk)).status_code == 200
        before = self.snapshot(other)
        response = client.patch(self.detail_url(other.pk), self.update_data(world), format="json")
        assert response.status_code == 403, response.content
        assert self.snapshot(other) == before


class ScopedDeleteContract:
    """Deleting another scope's object answers 404; one the caller may only view, 403."""

    def test_delete_of_other_scope_is_404(self, world):
        other = self.other(world)
        before = self.snapshot(other)
        response = self.client(world).delete(self.detail_url(other.pk))
        assert response.status_code == 404
        assert self.snapshot(other) == before

    def test_delete_of_object_only_viewable_is_403(self, world):
        other, user = self.other(world), self.user(world)
        self.grant_view_of_other(world, user)
        before = self.snapshot(other)
        response = client_for(user).delete(self.detail_url(other.pk))
        assert response.status_code == 403, response.content
        assert self.snapshot(other) == before


class ScopedWriteContract(ScopedUpdateContract, ScopedDeleteContract):
    """Writes to another scope's object: 404 when invisible, 403 when only viewable."""


class ReadOnlyRoleContract:
    """A read-only role (an analyst granted the own business line) may view the permitted
    object but gets 403 on every write, and nothing changes."""

    def test_read_only_role_may_not_write(self, world):
        obj = self.permitted(world)
        client = client_for(self.read_only_user(world))
        assert client.get(self.detail_url(obj.pk)).status_code == 200
        before, before_count = self.snapshot(obj), self.count()
        created = client.post(self.url, self.create_data(world), format="json")
        assert created.status_code == 403, created.content
        updated = client.patch(self.detail_url(obj.pk), self.update_data(world), format="json")
        assert updated.status_code == 403, updated.content
        assert client.delete(self.detail_url(obj.pk)).status_code == 403
        assert self.count() == before_count
        assert self.snapshot(obj) == before


class ProtectedDeleteContract:
    """Deleting an object still referred to answers 409, names the referrers, keeps it."""

    def test_delete_protected(self, world):
        obj = self.protected(world)
        before = self.count()
        response = self.client(world).delete(self.detail_url(obj.pk))
        assert response.status_code == 409, response.content
        body = response.json()
        assert body["detail"]
        assert body["used_by"], body
        assert self.model._default_manager.filter(pk=obj.pk).exists()
        assert self.count() == before


class ReadOnlyContract:
    """No writes at all: 405 for a user holding every permission, 403 for a read-only
    role, never a change."""

    def test_writes_are_refused(self, world):
        obj = self.permitted(world)
        before, before_count = self.snapshot(obj), self.count()
        read_only = self.read_only_user(world)
        for user in (self.user(world), read_only, world.admin):
            client = client_for(user)
            allowed = (405,) if user is world.admin else (403,) if user is read_only else (403, 405)
            assert client.post(self.url, {}, format="json").status_code in allowed
            assert client.put(self.detail_url(obj.pk), {}, format="json").status_code in allowed
            assert client.patch(self.detail_url(obj.pk), {}, format="json").status_code in allowed
            assert client.delete(self.detail_url(obj.pk)).status_code in allowed
        assert self.count() == before_count
        assert self.snapshot(obj) == before


class SharedDictionaryContract:
    """Shared dictionaries (regions, categories, naming rules): operators may view them
    (they are not scoped to a business line), but not create, change or delete them."""

    def test_operator_may_view(self, world):
        obj = self.permitted(world)
        client = client_for(world.operator)
        listing = client.get(self.url, {"page_size": 1000})
        assert listing.status_code == 200
        assert obj.pk in self.keys(listing)
        assert client.get(self.detail_url(obj.pk)).status_code == 200

    def test_operator_may_not_write(self, world):
        obj = self.permitted(world)
        before_count = self.count()
        before = client_for(world.admin).get(self.detail_url(obj.pk)).json()
        client = client_for(world.operator)
        created = client.post(self.url, self.create_data(world), format="json")
        assert created.status_code == 403, created.content
        updated = client.patch(self.detail_url(obj.pk), self.update_data(world), format="json")
        assert updated.status_code == 403
        deletable = self.deletable(world, world.admin)
        deleted = client.delete(self.detail_url(deletable.pk))
        assert deleted.status_code == 403
        assert self.model._default_manager.filter(pk=deletable.pk).exists()
        assert self.count() == before_count + 1  # only the deletable one added above
        assert client_for(world.admin).get(self.detail_url(obj.pk)).json() == before


class APIContract(Resource, ReadContract, WriteContract, ReadOnlyRoleContract):
    """The full contract of an unscoped, writable resource."""


class ScopedAPIContract(APIContract, ScopedContract, ScopedWriteContract):
    """The full contract of a resource scoped by business line / brand grants."""
