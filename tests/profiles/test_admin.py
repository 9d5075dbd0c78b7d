"""The admin pages: customers (scoped, masked), merges (split), import jobs (upload,
progress, report)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tagportal.profiles import services
from tagportal.profiles.models import Customer, Event, IdentityLookup, ImportJob, MergeRecord

from .conftest import EVENTS_CSV, OTHER_PHONE, PHONE, links

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(world):
    services.resolve_identities(
        world.own_brand,
        links(("a", "phone", PHONE), ("a", "wechat_unionid", "oUnion123"), ("b", "jd_pin", "jd_b")),
    )
    services.resolve_identities(world.other_brand, links(("z", "phone", OTHER_PHONE)))
    return Customer.objects.get(brand=world.own_brand, oneid=1)


def test_customer_changelist_is_scoped(client, world, people):
    client.force_login(world.analyst)
    response = client.get("/admin/profiles/customer/")
    assert response.status_code == 200
    assert {c.brand_id for c in response.context["cl"].result_list} == {world.own_brand.pk}
    other = Customer.objects.get(brand=world.other_brand)
    assert client.get(f"/admin/profiles/customer/{other.pk}/change/").status_code in (302, 404)


def test_customer_page_masks_identities_without_the_pii_permission(client, world, people):
    client.force_login(world.analyst)
    html = client.get(f"/admin/profiles/customer/{people.pk}/change/").content.decode()
    assert "138******78" in html and "oU****3" in html
    assert PHONE not in html and "oUnion123" not in html
    client.force_login(world.admin)
    html = client.get(f"/admin/profiles/customer/{people.pk}/change/").content.decode()
    assert "oUnion123" in html and PHONE not in html


def test_customer_search_by_identifier_compares_hashes(client, world, people):
    client.force_login(world.admin)  # holds the permission to look people up by identity value
    found = client.get("/admin/profiles/customer/", {"q": f"+86 {PHONE}"}).context["cl"].result_list
    assert list(found) == [people]
    assert list(client.get("/admin/profiles/customer/", {"q": "13999999999"}).context["cl"].result_list) == []
    lookups = IdentityLookup.objects.filter(user=world.admin, endpoint="admin_search").order_by("pk")
    assert [(row.candidates, row.found, row.refused) for row in lookups] == [(1, 1, False), (1, 0, False)]


def test_customer_search_by_identifier_needs_the_lookup_permission(client, world, people):
    client.force_login(world.analyst)
    assert (
        list(client.get("/admin/profiles/customer/", {"q": f"+86 {PHONE}"}).context["cl"].result_list) == []
    )
    assert list(client.get("/admin/profiles/customer/", {"q": "oUnion123"}).context["cl"].result_list) == []
    assert list(client.get("/admin/profiles/customer/", {"q": "2"}).context["cl"].result_list) == [
        Customer.objects.get(brand=world.own_brand, oneid=2)
    ]  # OneIDs are searched
    assert not IdentityLookup.objects.exists()  # nothing was looked up by identity


def test_identity_lookups_are_listed_read_only_for_admins(client, world, people):
    client.force_login(world.admin)
    client.get("/admin/profiles/customer/", {"q": PHONE})
    row = IdentityLookup.objects.get()
    page = client.get("/admin/profiles/identitylookup/")
    assert page.status_code == 200 and list(page.context["cl"].result_list) == [row]
    assert PHONE not in page.content.decode()
    change = client.get(f"/admin/profiles/identitylookup/{row.pk}/change/")
    assert change.status_code == 200 and b'name="candidates"' not in change.content  # read-only
    assert client.get("/admin/profiles/identitylookup/add/").status_code == 403
    client.force_login(world.operator)
    assert client.get("/admin/profiles/identitylookup/").status_code == 403


def test_split_action(client, world, people):
    services.resolve_identities(world.own_brand, links(("x", "phone", PHONE), ("x", "jd_pin", "jd_b")))
    merge = MergeRecord.objects.get()
    client.force_login(world.steward)  # may view merges, not split them
    page = client.get("/admin/profiles/mergerecord/")
    assert page.status_code == 200 and "split_action" not in page.content.decode()
    client.force_login(world.admin)
    response = client.post(
        "/admin/profiles/mergerecord/",
        {"action": "split_action", "_selected_action": [merge.pk]},
        follow=True,
    )
    assert response.status_code == 200
    merge.refresh_from_db()
    assert merge.undone_at is not None and merge.undone_by == world.admin
    assert Customer.objects.get(brand=world.own_brand, oneid=2).merged_into is None


def test_upload_runs_the_import_and_shows_its_report(
    client, world, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.MEDIA_ROOT = tmp_path
    client.force_login(world.steward)
    form = client.get("/admin/profiles/importjob/add/")
    assert form.status_code == 200
    assert list(form.context["adminform"].form.fields["brand"].queryset) == [world.own_brand]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/profiles/importjob/add/",
            {
                "brand": world.own_brand.pk,
                "kind": "events",
                "file": SimpleUploadedFile("events.csv", EVENTS_CSV.encode(), content_type="text/csv"),
            },
        )
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response.url.endswith(f"/importjob/{job.pk}/change/")
    assert job.status == "succeeded" and job.created_by == world.steward and job.file_name == "events.csv"
    assert Event.objects.count() == 4
    assert not job.upload and not list(tmp_path.rglob("*.csv"))  # the file (personal data) is gone
    page = client.get(response.url).content.decode()
    assert 'value="100"' in page and "location.reload" not in page

    bad = "client_id,time,type,phone\nx,2024-05-01,nope,13800000000\n"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/admin/profiles/importjob/add/",
            {
                "brand": world.own_brand.pk,
                "kind": "events",
                "file": SimpleUploadedFile("bad.csv", bad.encode()),
            },
        )
    failed = ImportJob.objects.get(file_name="bad.csv")
    assert failed.status == "failed"
    page = client.get(f"/admin/profiles/importjob/{failed.pk}/change/").content.decode()
    assert "<td>2</td><td>type</td>" in page


def test_a_running_import_refreshes_its_page(client, world):
    job = ImportJob.objects.create(brand=world.own_brand, kind="events", status="running", progress=40)
    client.force_login(world.steward)
    page = client.get(f"/admin/profiles/importjob/{job.pk}/change/").content.decode()
    assert 'value="40"' in page and "location.reload" in page


def test_only_importers_may_upload(client, world):
    client.force_login(world.operator)
    assert client.get("/admin/profiles/importjob/add/").status_code == 403
    client.force_login(world.analyst)
    assert client.get("/admin/profiles/importjob/").status_code == 200
    assert client.get("/admin/profiles/importjob/add/").status_code == 403
