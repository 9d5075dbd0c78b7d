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
"""

from __future__ import annotations

import json

from rest_framework.test import APIClient

from tests.conftest import client_for

UNKNOWN_PK = 987654321


class Resource:
    """What a contract needs to know about one endpoint."""

    url: str
    model: type
    #: Fields of the create/update data that the API does not echo back as sent.
    write_only_fields: tuple[str, ...] = ()

    def user(self, world):
        return world.admin

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

    def count(self) -> int:
        return self.model._default_manager.count()

    def assert_matches(self, payload: dict, data: dict):
        """Every field of ``data`` reads back as it was written."""
        for key, value in data.items():
            if key in self.write_only_fields:
                continue
            assert key in payload, f"{key!r} missing from {sorted(payload)}"
            assert payload[key] == value, f"{key}: sent {value!r}, stored {payload[key]!r}"


def _ids(response) -> set:
    return {row["id"] for row in response.json()["results"]}


def _assert_paginated(response):
    body = response.json()
    assert set(body) >= {"count", "next", "previous", "results"}, body
    assert isinstance(body["results"], list)
    assert body["count"] >= len(body["results"])


class ReadContract:
    """List and detail: 200, paginated, the permitted object is there; no anonymous reads."""

    def test_list(self, world):
        obj = self.permitted(world)
        response = self.client(world).get(self.url)
        assert response.status_code == 200, response.content
        _assert_paginated(response)
        assert obj.pk in _ids(response)

    def test_detail(self, world):
        obj = self.permitted(world)
        response = self.client(world).get(self.detail_url(obj.pk))
        assert response.status_code == 200, response.content
        assert response.json()["id"] == obj.pk

    def test_detail_of_unknown_object_is_404(self, world):
        response = self.client(world).get(self.detail_url(UNKNOWN_PK))
        assert response.status_code == 404

    def test_unauthenticated_read(self, world):
        obj = self.permitted(world)
        anonymous = APIClient()
        for url in (self.url, self.detail_url(obj.pk)):
            response = anonymous.get(url)
            # Token authentication comes first, so DRF answers 401 with a challenge.
            assert response.status_code == 401, (url, response.status_code)
            assert response.headers.get("WWW-Authenticate", "").startswith("Token")
            assert str(obj.pk) not in json.dumps(response.json())


class ScopedContract:
    """Another brand's (business line's) object is invisible: not listed, 404 in detail."""

    def test_list_hides_other_scope(self, world):
        obj, other = self.permitted(world), self.other(world)
        response = self.client(world).get(self.url, {"page_size": 1000})
        assert response.status_code == 200
        ids = _ids(response)
        assert obj.pk in ids
        assert other.pk not in ids
        assert response.json()["count"] == len(ids)

    def test_detail_of_other_scope_is_404(self, world):
        other = self.other(world)
        response = self.client(world).get(self.detail_url(other.pk))
        assert response.status_code == 404


class WriteContract:
    """Create, update and delete, each checked against the database."""

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

    def test_delete(self, world):
        user = self.user(world)
        obj = self.deletable(world, user)
        response = client_for(user).delete(self.detail_url(obj.pk))
        assert response.status_code == 204, response.content
        assert not self.model._default_manager.filter(pk=obj.pk).exists()
        again = client_for(user).get(self.detail_url(obj.pk))
        assert again.status_code == 404

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


class ScopedWriteContract:
    """Writes to another scope's object answer 404 (it does not exist for the caller)."""

    def test_update_of_other_scope_is_404(self, world):
        other = self.other(world)
        before = {f.attname: getattr(other, f.attname) for f in other._meta.concrete_fields}
        response = self.client(world).patch(self.detail_url(other.pk), self.update_data(world), format="json")
        assert response.status_code == 404
        other.refresh_from_db()
        assert {f.attname: getattr(other, f.attname) for f in other._meta.concrete_fields} == before

    def test_delete_of_other_scope_is_404(self, world):
        other = self.other(world)
        response = self.client(world).delete(self.detail_url(other.pk))
        assert response.status_code == 404
        assert self.model._default_manager.filter(pk=other.pk).exists()


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
    """No writes at all: 405 for a user holding every permission, never a change."""

    def test_writes_are_refused(self, world):
        obj = self.permitted(world)
        before = self.count()
        for user in (self.user(world), world.admin):
            client = client_for(user)
            allowed = (405,) if user is world.admin else (403, 405)
            assert client.post(self.url, {}, format="json").status_code in allowed
            assert client.put(self.detail_url(obj.pk), {}, format="json").status_code in allowed
            assert client.patch(self.detail_url(obj.pk), {}, format="json").status_code in allowed
            assert client.delete(self.detail_url(obj.pk)).status_code in allowed
        assert self.count() == before
        assert self.model._default_manager.filter(pk=obj.pk).exists()


class SharedDictionaryContract:
    """Shared dictionaries (regions, categories, naming rules): operators may view them
    (they are not scoped to a business line), but not create, change or delete them."""

    def test_operator_may_view(self, world):
        obj = self.permitted(world)
        client = client_for(world.operator)
        listing = client.get(self.url, {"page_size": 1000})
        assert listing.status_code == 200
        assert obj.pk in _ids(listing)
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


class APIContract(Resource, ReadContract, WriteContract):
    """The full contract of an unscoped, writable resource."""


class ScopedAPIContract(APIContract, ScopedContract, ScopedWriteContract):
    """The full contract of a resource scoped by business line / brand grants."""
