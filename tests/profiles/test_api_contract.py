"""The API contract (tests/api/contract.py) of the profiles resources: people, OneID
merges (``split`` undoes one) and import jobs, all read-only and scoped by brand."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from tagportal.core.roles import STEWARD
from tagportal.profiles import imports, services
from tagportal.profiles.models import Customer, ImportJob, MergeRecord

from ..api.contract import ReadContract, ReadOnlyContract, Resource, ScopedContract, once
from ..conftest import client_for
from ..factories import UserFactory
from .conftest import EVENTS_CSV, OTHER_PHONE, PHONE, links

pytestmark = pytest.mark.django_db
URL = "/api/profiles/"


class ProfilesResource(Resource, ReadContract, ScopedContract, ReadOnlyContract):
    def user(self, world):
        return world.steward


class TestCustomers(ProfilesResource):
    url = f"{URL}customers/"
    model = Customer

    def permitted(self, world):
        return once(world, "_own_customer", lambda: Customer.objects.create(brand=world.own_brand, oneid=1))

    def other(self, world):
        return once(
            world, "_other_customer", lambda: Customer.objects.create(brand=world.other_brand, oneid=1)
        )


def _merge(brand, phone: str, pin: str) -> MergeRecord:
    """Two people of ``brand`` (one with a phone, one with a JD pin) found to be one."""
    services.resolve_identities(brand, links(("a", "phone", phone), ("b", "jd_pin", pin)))
    services.resolve_identities(brand, links(("x", "phone", phone), ("x", "jd_pin", pin)))
    return MergeRecord.objects.get(brand=brand)


class TestMerges(ProfilesResource):
    url = f"{URL}merges/"
    model = MergeRecord

    def permitted(self, world):
        return once(world, "_own_merge", lambda: _merge(world.own_brand, PHONE, "jd_own"))

    def other(self, world):
        return once(world, "_other_merge", lambda: _merge(world.other_brand, OTHER_PHONE, "jd_other"))

    def splitter(self, world):
        """A steward of the own business line who may also split merges."""

        def make():
            user = UserFactory(username="splitter", role=STEWARD, grants=[(world.own_line, "stewards")])
            user.user_permissions.add(Permission.objects.get(codename="change_mergerecord"))
            return type(user).objects.get(pk=user.pk)  # a fresh instance: no permission cache

        return once(world, "_splitter", make)

    def split(self, user, merge):
        return client_for(user).post(
            f"{self.detail_url(merge.pk)}split/", {"reason": "误合并"}, format="json"
        )

    def test_split_a_permitted_merge(self, world):
        merge = self.permitted(world)
        response = self.split(self.splitter(world), merge)
        assert response.status_code == 200, response.content
        assert response.json()["undone_by"] == "splitter"
        merge.refresh_from_db()
        assert merge.undone_by == self.splitter(world)

    def test_split_of_other_scope_is_404_or_403_when_only_viewable(self, world):
        other, user = self.other(world), self.splitter(world)
        before = self.snapshot(other)
        assert self.split(user, other).status_code == 404
        self.grant_view_of_other(world, user)
        assert client_for(user).get(self.detail_url(other.pk)).status_code == 200
        assert self.split(user, other).status_code == 403
        assert self.snapshot(other) == before

    def test_read_only_role_may_not_split(self, world):
        merge = self.permitted(world)
        before = self.snapshot(merge)
        assert self.split(self.read_only_user(world), merge).status_code == 403
        assert self.snapshot(merge) == before


def _import(brand) -> ImportJob:
    upload = SimpleUploadedFile("events.csv", EVENTS_CSV.encode("utf-8"), content_type="text/csv")
    return imports.import_file(brand, "events", upload)


class TestImportJobs(ProfilesResource):
    url = f"{URL}import-jobs/"
    model = ImportJob

    def permitted(self, world):
        return once(world, "_own_job", lambda: _import(world.own_brand))

    def other(self, world):
        return once(world, "_other_job", lambda: _import(world.other_brand))
