"""Hostile profile imports: each is refused in the request (400, nothing stored, no job)
within seconds and under 300 MB; and parallel imports of one client id store it once."""

from __future__ import annotations

import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from rest_framework.test import APIRequestFactory, force_authenticate

from tagportal.core import uploads
from tagportal.profiles import importers, imports
from tagportal.profiles.api.views import ImportView
from tagportal.profiles.models import Event, ImportJob

from .. import bombs
from ..conftest import client_for
from .conftest import EVENTS_CSV, PHONE

URL = "/api/profiles/import/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def refused(world, name: str, data: bytes, expected: str, kind: str = "identities"):
    with bombs.bounded(seconds=5):
        response = client_for(world.steward).post(
            URL, {"brand": "ruiyan", "kind": kind, "file": SimpleUploadedFile(name, data)}, format="multipart"
        )
    assert response.status_code == 400, response.content
    body = response.json()
    assert expected in body["file"][0] and body["errors"][0]["message"] == body["file"][0]
    assert not ImportJob.objects.exists()
    return body


def test_parquet_of_20_million_rows_is_refused_by_its_metadata(world, media, tmp_path):
    path = bombs.parquet_of_rows(tmp_path / "phones.parquet", 20_000_000)
    data = path.read_bytes()
    assert len(data) < 200 * 1024
    refused(world, "phones.parquet", data, "more than 500,000 rows")
    assert not media.exists()


def test_parquet_reader_checks_the_metadata_before_reading(tmp_path):
    path = bombs.parquet_of_rows(tmp_path / "phones.parquet", 20_000_000)
    with bombs.bounded(seconds=2, megabytes=50), pytest.raises(importers.ImportFileError, match="rows"):
        importers.read_table(path, caps=importers.Caps(rows=1000, columns=10))


def post_50_mb_csv(world, tmp_path):
    """A 50 MB identities CSV sent to the import API, which must answer within 5 s."""
    path = bombs.big_csv(tmp_path / "phones.csv", 50, "phone\n", f"{PHONE}\n")
    with open(path, "rb") as handle:
        request = APIRequestFactory().post(
            URL, {"brand": "ruiyan", "kind": "identities", "file": handle}, format="multipart"
        )
    force_authenticate(request, world.steward)
    with bombs.bounded(seconds=5):
        return ImportView.as_view()(request)


def test_a_csv_past_the_row_cap_is_refused_from_its_line_count(world, media, settings, tmp_path):
    settings.TAGPORTAL_MAX_UPLOAD_BYTES = 100 * bombs.MB
    response = post_50_mb_csv(world, tmp_path)
    assert response.status_code == 400
    assert "more than 500,000 rows" in response.data["file"][0]
    assert not ImportJob.objects.exists()


def test_the_csv_reader_stops_at_the_row_cap(tmp_path):
    path = bombs.big_csv(tmp_path / "phones.csv", 50, "phone\n", f"{PHONE}\n")
    with bombs.bounded(seconds=3, megabytes=100), pytest.raises(importers.ImportFileError, match="rows"):
        importers.read_table(path, caps=importers.Caps(rows=5000, columns=10))


def test_a_50_mb_upload_is_cut_off_at_the_limit(world, media, tmp_path):
    response = post_50_mb_csv(world, tmp_path)
    assert response.status_code == 400
    assert response.data["file"] == [uploads.too_large_message()]
    assert not ImportJob.objects.exists() and not media.exists()


def test_a_header_of_too_many_columns(world, media):
    header = ",".join(f"properties.k{i}" for i in range(300)) + ",client_id,time,type,phone\n"
    refused(world, "wide.csv", header.encode(), "more than 200 columns", kind="events")


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("people.xlsx", lambda: bombs.workbook_bytes([["phone"], [PHONE]]), "save the sheet as CSV"),
        ("people.xlsx", lambda: b"phone\n13800000000\n", "save the sheet as CSV"),
        ("zip.csv", lambda: bombs.zip_bomb(gigabytes=1), "save the sheet as CSV"),
        ("people.parquet", lambda: b"PAR1 truncated", "could not be read"),
    ],
    ids=["excel", "not-a-zip-named-xlsx", "zip-bomb", "truncated-parquet"],
)
def test_files_of_other_kinds(world, media, name, make, expected):
    refused(world, name, make(), expected)


def test_the_admin_form_says_the_file_is_too_big(client, world, media, settings):
    settings.TAGPORTAL_MAX_UPLOAD_BYTES = 1024
    client.force_login(world.steward)
    response = client.post(
        "/admin/profiles/importjob/add/",
        {
            "brand": world.own_brand.pk,
            "kind": "events",
            "file": SimpleUploadedFile("events.csv", EVENTS_CSV.encode() * 10),
        },
    )
    assert response.status_code == 200  # the form again, with its error
    assert uploads.too_large_message(1024) in response.content.decode()
    assert not ImportJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_parallel_imports_of_one_client_id_store_it_once(world, settings, tmp_path):
    """Three imports of the same file at once: one event stored, three jobs succeeded.

    They race on PostgreSQL (CI's second pass). SQLite's in-memory test database shares
    one cache between connections, where a locked table fails at once instead of
    waiting (a file database waits, see the busy timeout in settings), so there the
    threads take turns; the race itself is reproduced on any database by the next test."""
    settings.MEDIA_ROOT = tmp_path
    racing = connection.vendor != "sqlite"
    barrier = threading.Barrier(3 if racing else 1)
    statuses = []

    def send():
        try:
            barrier.wait(timeout=10)
            response = client_for(world.steward).post(
                URL,
                {
                    "brand": "ruiyan",
                    "kind": "events",
                    "file": SimpleUploadedFile(
                        "one.csv", f"client_id,time,type,phone\nc1,2024-05-01,store_visit,{PHONE}\n".encode()
                    ),
                },
                format="multipart",
            )
            statuses.append(response.status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
        if not racing:
            thread.join(timeout=60)
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [202, 202, 202]
    jobs = list(ImportJob.objects.order_by("pk"))
    assert [job.status for job in jobs] == ["succeeded"] * 3, [(j.status, j.message) for j in jobs]
    assert sorted(job.rows_ok for job in jobs) == [0, 0, 1]
    assert sorted(job.rows_skipped for job in jobs) == [0, 1, 1]
    assert Event.objects.filter(client_id="c1").count() == 1


def test_an_import_skips_client_ids_written_while_it_ran(world, monkeypatch):
    """The race itself, made certain: the other import writes between the check and the insert."""
    imports.import_file(world.own_brand, "events", SimpleUploadedFile("a.csv", EVENTS_CSV.encode()))
    monkeypatch.setattr(imports.services, "existing_client_ids", lambda *args, **kwargs: set())
    job = imports.import_file(world.own_brand, "events", SimpleUploadedFile("b.csv", EVENTS_CSV.encode()))
    assert job.status == "succeeded", job.message
    assert Event.objects.count() == 4
