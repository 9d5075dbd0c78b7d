"""The profiles API: scoped by brand (another brand's people answer 404), identities
masked without the PII permission, lookup by identity, bulk import, jobs, merges."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from tagportal.core.roles import API_CLIENT
from tagportal.profiles import imports, services
from tagportal.profiles.models import Customer, Event, ImportJob, MergeRecord

from ..conftest import client_for
from ..factories import UserFactory
from .conftest import EVENTS_CSV, OTHER_PHONE, PHONE, links

pytestmark = pytest.mark.django_db
URL = "/api/profiles/"


@pytest.fixture
def people(world):
    services.resolve_identities(
        world.own_brand,
        links(("a", "phone", PHONE), ("a", "wechat_unionid", "oUnion123"), ("b", "jd_pin", "jd_b")),
    )
    services.resolve_identities(world.other_brand, links(("z", "phone", OTHER_PHONE)))
    return {
        "own": Customer.objects.get(brand=world.own_brand, oneid=1),
        "own2": Customer.objects.get(brand=world.own_brand, oneid=2),
        "other": Customer.objects.get(brand=world.other_brand, oneid=1),
    }


def upload(text=EVENTS_CSV, name="events.csv"):
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def values(payload) -> dict:
    return {i["type"]: i["value"] for i in payload["identities"]}


def test_customers_are_scoped_by_brand(world, people):
    client = client_for(world.analyst)
    listing = client.get(f"{URL}customers/")
    assert listing.status_code == 200
    assert {(c["brand"], c["oneid"]) for c in listing.json()["results"]} == {("ruiyan", 1), ("ruiyan", 2)}
    assert client.get(f"{URL}customers/{people['own'].pk}/").status_code == 200
    assert client.get(f"{URL}customers/{people['other'].pk}/").status_code == 404
    assert client_for(world.admin).get(f"{URL}customers/{people['other'].pk}/").status_code == 200
    assert client_for(world.nobody).get(f"{URL}customers/").status_code == 403
    filtered = client.get(f"{URL}customers/", {"oneid": 2}).json()["results"]
    assert [c["oneid"] for c in filtered] == [2]


def test_identities_are_masked_without_the_pii_permission(world, people):
    detail = client_for(world.analyst).get(f"{URL}customers/{people['own'].pk}/").json()
    assert values(detail) == {"phone": "138******78", "wechat_unionid": "oU****3"}
    raw = str(detail)
    assert PHONE not in raw and "oUnion123" not in raw
    # the admin holds core.view_pii: identifiers in clear, but a phone number never
    admin = client_for(world.admin).get(f"{URL}customers/{people['own'].pk}/").json()
    assert values(admin) == {"phone": "138******78", "wechat_unionid": "oUnion123"}
    # so does anyone granted the permission
    world.analyst.user_permissions.add(Permission.objects.get(codename="view_pii"))
    analyst = type(world.analyst).objects.get(pk=world.analyst.pk)  # permissions are cached per object
    granted = client_for(analyst).get(f"{URL}customers/{people['own'].pk}/").json()
    assert values(granted)["wechat_unionid"] == "oUnion123"


def test_lookup_by_identity(world, people):
    crm = UserFactory(username="crm", role=API_CLIENT, grants=[(world.own_line, "analysts")])
    client = client_for(crm)
    found = client.get(f"{URL}customers/lookup/", {"type": "phone", "value": f"+86 {PHONE}"})
    assert found.status_code == 200 and found.json()["oneid"] == 1
    assert client.get(f"{URL}customers/lookup/", {"type": "phone", "value": OTHER_PHONE}).status_code == 404
    assert (
        client.get(
            f"{URL}customers/lookup/", {"type": "jd_pin", "value": "jd_b", "brand": "qingquan"}
        ).status_code
        == 404
    )
    bad = client.get(f"{URL}customers/lookup/", {"type": "passport", "value": "x"})
    assert bad.status_code == 400 and "type" in bad.json()
    # operators and analysts see profiles but may not look people up by identity value
    for user in (world.analyst, world.operator):
        refused = client_for(user).get(f"{URL}customers/lookup/", {"type": "phone", "value": PHONE})
        assert refused.status_code == 403 and "look people up" in refused.json()["detail"]


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    return tmp_path


def post_import(client, file, capture, kind="events", brand="ruiyan"):
    with capture(execute=True):
        return client.post(f"{URL}import/", {"brand": brand, "kind": kind, "file": file}, format="multipart")


def test_bulk_import_endpoint(world, media, django_capture_on_commit_callbacks):
    client = client_for(world.steward)
    response = post_import(client, upload(), django_capture_on_commit_callbacks)
    assert response.status_code == 202, response.json()
    accepted = response.json()
    assert (
        accepted["status"] == "pending" and accepted["rows_total"] == 4
    )  # the lines, counted in the request
    assert response["Location"].endswith(f"{URL}import-jobs/{accepted['id']}/")
    # without a broker the job runs once the request's transaction commits
    job = client.get(response["Location"]).json()
    assert job["status"] == "succeeded" and job["rows_ok"] == 4 and job["created_counts"]["events"] == 4
    assert job["brand"] == "ruiyan" and job["created_by"] == "st" and job["progress"] == 100
    again = post_import(client, upload(), django_capture_on_commit_callbacks)
    assert again.status_code == 202 and client.get(again["Location"]).json()["rows_skipped"] == 4
    assert Event.objects.count() == 4
    assert not list(media.rglob("*.csv"))  # stored files are deleted once imported

    bad = post_import(
        client, upload("client_id,time,type,phone\nx,2024-05-01,nope,1\n"), django_capture_on_commit_callbacks
    )
    assert bad.status_code == 202
    body = client.get(bad["Location"]).json()
    assert body["status"] == "failed" and {(e["row"], e["column"]) for e in body["errors"]} == {
        (2, "type"),
        (2, "phone"),
    }
    assert Event.objects.count() == 4

    jobs = client.get(f"{URL}import-jobs/").json()["results"]
    assert [j["status"] for j in jobs] == ["failed", "succeeded", "succeeded"]
    assert client.get(f"{URL}import-jobs/{jobs[0]['id']}/").json()["errors"] == body["errors"]


def test_bulk_import_refuses_a_bad_header_in_the_request(world, media, django_capture_on_commit_callbacks):
    client = client_for(world.steward)
    response = post_import(
        client,
        upload("client_id,time,colour,phone\nx,2024-05-01,red,1\n"),
        django_capture_on_commit_callbacks,
    )
    assert response.status_code == 400
    body = response.json()
    assert {(e["row"], e["column"]) for e in body["errors"]} == {(1, "colour"), (1, "type")}
    assert "colour" in body["file"][0]
    assert not ImportJob.objects.exists() and not list(media.rglob("*"))  # nothing stored


def test_bulk_import_needs_the_permission_and_the_brand(world):
    data = {"brand": "ruiyan", "kind": "events"}
    assert (
        client_for(world.analyst)
        .post(f"{URL}import/", {**data, "file": upload()}, format="multipart")
        .status_code
        == 403
    )
    assert (
        client_for(world.operator)
        .post(f"{URL}import/", {**data, "file": upload()}, format="multipart")
        .status_code
        == 403
    )
    other = client_for(world.steward).post(
        f"{URL}import/", {**data, "brand": "qingquan", "file": upload()}, format="multipart"
    )
    assert other.status_code == 400 and "brand" in other.json()
    missing = client_for(world.steward).post(f"{URL}import/", data, format="multipart")
    assert missing.status_code == 400 and "file" in missing.json()
    assert not ImportJob.objects.exists() and not Event.objects.exists()


def test_import_jobs_are_scoped(world):
    imports.import_file(world.other_brand, "events", upload())
    assert client_for(world.steward).get(f"{URL}import-jobs/").json()["results"] == []
    assert len(client_for(world.admin).get(f"{URL}import-jobs/").json()["results"]) == 1


def test_merges_list_and_split(world, people):
    services.resolve_identities(world.own_brand, links(("x", "phone", PHONE), ("x", "jd_pin", "jd_b")))
    merge = MergeRecord.objects.get()
    listing = client_for(world.analyst).get(f"{URL}merges/").json()["results"]
    assert [(m["kept_oneid"], m["merged_oneid"], m["rule"]) for m in listing] == [(1, 2, "platform_id")]
    assert client_for(world.analyst).post(f"{URL}merges/{merge.pk}/split/").status_code == 403
    assert client_for(world.steward).post(f"{URL}merges/{merge.pk}/split/").status_code == 403
    merged = client_for(world.admin).get(f"{URL}customers/", {"include_merged": "true"}).json()["results"]
    assert {c["oneid"]: c["merged_into"] for c in merged if c["brand"] == "ruiyan"} == {1: None, 2: 1}
    response = client_for(world.admin).post(
        f"{URL}merges/{merge.pk}/split/", {"reason": "误合并"}, format="json"
    )
    assert response.status_code == 200 and response.json()["undone_by"] == "ad"
    assert client_for(world.admin).post(f"{URL}merges/{merge.pk}/split/").status_code == 400
    active = client_for(world.analyst).get(f"{URL}customers/").json()["results"]
    assert [c["oneid"] for c in active] == [1, 2]


def test_without_a_broker_the_import_runs_after_the_answer_on_a_thread(
    world, media, settings, monkeypatch, django_capture_on_commit_callbacks
):
    """With no broker, the request answers 202 at once and the import runs on a thread of
    the process — never inside the request (a long import would hold it for minutes)."""
    import threading

    from tagportal.profiles import tasks

    settings.TAGPORTAL_EAGER_IN_THREAD = True
    release, ran = threading.Event(), []

    def blocked(task_self=None, args=(), **kwargs):
        release.wait(10)  # the import "takes long": until the test releases it
        ran.append((threading.current_thread().name, args))

    monkeypatch.setattr(tasks.run_import_job, "apply", blocked)
    response = post_import(client_for(world.steward), upload(), django_capture_on_commit_callbacks)
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert ran == []  # the request answered while the import had not run
    release.set()
    for thread in threading.enumerate():
        if thread.name == "task:profiles.run_import_job":
            thread.join(10)
    assert ran == [("task:profiles.run_import_job", (response.json()["id"],))]
