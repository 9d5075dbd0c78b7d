"""Hostile bulk change-request files: each is answered 400 (or read by its real extent)
within seconds and under 300 MB, and nothing is saved. The files are made in the test."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import resolve
from rest_framework.test import APIRequestFactory, force_authenticate

from tagportal.core import uploads
from tagportal.governance import bulk

from .. import bombs
from ..conftest import client_for
from .conftest import draft_tag, governance_state, publish
from .test_bulk import BULK_URL

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@pytest.fixture
def bw(gw):
    """A published tag to deprecate."""
    gw.to_deprecate = publish(draft_tag(gw.own_brand, gw.category, "qi_yong"))
    return gw


def send(user, data: bytes, name: str = "changes.xlsx"):
    return client_for(user).post(BULK_URL, {"file": SimpleUploadedFile(name, data, XLSX)}, format="multipart")


def refused(w, data: bytes, expected: str, name: str = "changes.xlsx", seconds: float = 5):
    before = governance_state()
    with bombs.bounded(seconds=seconds):
        response = send(w.operator, data, name)
    assert response.status_code == 400, response.content
    assert expected in response.json()["detail"], response.json()
    assert governance_state() == before
    return response


def test_a_lying_dimension_is_read_by_the_real_extent(bw):
    """The sheet claims A1:XFD1048576 (17 billion cells); it holds a header and one row."""
    data = bombs.lying_dimension([["action", "brand", "code"], ["deprecate", "ruiyan", bw.to_deprecate.code]])
    rows = bulk.read_rows(SimpleUploadedFile("changes.xlsx", data))
    assert [(r["_row"], r["action"], r["code"]) for r in rows] == [(2, "deprecate", bw.to_deprecate.code)]
    with bombs.bounded(seconds=5):
        response = send(bw.operator, data)
    assert response.status_code == 201, response.content
    assert [i["tag"]["code"] for i in response.json()["items"]] == [bw.to_deprecate.code]


def test_real_columns_past_the_cap(bw):
    refused(bw, bombs.wide_sheet(16384), f"more than {bulk.MAX_COLUMNS} columns")


def test_cells_that_name_no_column_count_too(bw):
    refused(bw, bombs.cells_without_references(100_000), f"more than {bulk.MAX_COLUMNS} columns")


def test_real_rows_past_the_cap(bw):
    refused(bw, bombs.tall_sheet(20_000), f"At most {bulk.MAX_ROWS} rows")


def test_a_zip_bomb(bw):
    data = bombs.zip_bomb(gigabytes=1)
    assert len(data) < 2 * bombs.MB
    refused(bw, data, "unpacks to more than 32 MB")


def test_an_entity_bomb(bw):
    refused(bw, bombs.entity_bomb(), "cannot be read")


@pytest.mark.parametrize(
    "make",
    [lambda: b"just some text, not a workbook", lambda: bombs.truncated(bombs.workbook_bytes([["action"]]))],
    ids=["not-a-zip", "truncated"],
)
def test_files_that_are_no_workbook(bw, make):
    refused(bw, make(), "not a valid Excel (.xlsx) file")


def test_a_csv_past_the_row_cap_is_refused_before_it_is_read_whole(tmp_path, settings):
    """With the upload limit lifted, a 50 MB CSV stops at the first row past the cap."""
    settings.TAGPORTAL_MAX_UPLOAD_BYTES = 100 * bombs.MB
    path = bombs.big_csv(tmp_path / "big.csv", 50, "action,brand,code\n", "deprecate,ruiyan,yimei_tag_code\n")
    with open(path, "rb") as handle, bombs.bounded(seconds=3, megabytes=100):
        with pytest.raises(bulk.BulkFileError) as refusal:
            bulk.read_rows(handle)
    assert f"At most {bulk.MAX_ROWS} rows" in refusal.value.message


def test_a_csv_of_one_endless_line(tmp_path, settings):
    settings.TAGPORTAL_MAX_UPLOAD_BYTES = 100 * bombs.MB
    path = tmp_path / "line.csv"
    path.write_bytes(b"action,brand,code\n" + b"ab," * (10 * bombs.MB))
    with open(path, "rb") as handle, bombs.bounded(seconds=5, megabytes=150):
        with pytest.raises(bulk.BulkFileError) as refusal:
            bulk.read_rows(handle)
    assert "longer than" in refusal.value.message


def test_a_50_mb_upload_is_cut_off_at_the_limit(bw, tmp_path):
    """The body is built before the measure: only the server's side is measured."""
    path = bombs.big_csv(tmp_path / "big.csv", 50, "action,brand,code\n", "deprecate,ruiyan,yimei_tag_code\n")
    with open(path, "rb") as handle:
        request = APIRequestFactory().post(BULK_URL, {"file": handle}, format="multipart")
    force_authenticate(request, bw.operator)
    view = resolve(BULK_URL).func
    before = governance_state()
    with bombs.bounded(seconds=5):
        response = view(request)
    assert response.status_code == 400
    assert response.data["detail"] == uploads.too_large_message()
    assert governance_state() == before


def test_the_page_says_the_file_is_too_big(bw, settings):
    settings.TAGPORTAL_MAX_UPLOAD_BYTES = 1024
    from django.test import Client

    client = Client()
    client.force_login(bw.operator)
    response = client.post(
        "/review/bulk/",
        {"file": SimpleUploadedFile("changes.csv", b"action,brand,code\n" + b"x,y,z\n" * 1000)},
    )
    assert response.status_code == 400
    assert uploads.too_large_message(1024) in response.content.decode()
