"""The portal ships in Simplified Chinese and English."""

import re
from pathlib import Path

import pytest
from django.utils import translation

from tagportal.catalog.choices import TagStatus

from ..conftest import client_for

PO = Path(__file__).resolve().parents[2] / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


def test_every_message_is_translated():
    entries = PO.read_text(encoding="utf-8").split("\n\n")
    untranslated = []
    for entry in entries[1:]:
        if "#, fuzzy" in entry:
            untranslated.append(entry)
            continue
        if entry.lstrip().startswith("#~"):  # obsolete, no longer used
            continue
        msgstrs = re.findall(r'^msgstr(?:\[\d\])? "(.*)"((?:\n".*")*)', entry, re.M)
        if not msgstrs or any(not (first or rest.strip()) for first, rest in msgstrs):
            untranslated.append(entry)
    assert untranslated == []
    assert PO.with_suffix(".mo").stat().st_mtime >= PO.stat().st_mtime - 1, (
        "compile the catalogue (make messages)"
    )


def test_choices_and_messages_in_chinese():
    with translation.override("zh-hans"):
        assert str(TagStatus.PUBLISHED.label) == "已发布"
        assert str(TagStatus.DRAFT.label) == "草稿"
    with translation.override("en"):
        assert str(TagStatus.PUBLISHED.label) == "Published"


@pytest.mark.django_db
def test_admin_follows_the_browser_language(client, world):
    client.force_login(world.operator)
    chinese = client.get("/admin/catalog/tag/", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").content.decode()
    assert "标签" in chinese and "业务线" in chinese
    english = client.get("/admin/catalog/tag/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Business line" in english or "business line" in english


@pytest.mark.django_db
def test_api_errors_in_chinese(world):
    client = client_for(world.operator)
    response = client.post(
        "/api/catalog/tags/",
        {"name": "坏标签", "brand": world.own_brand.code, "category": world.category.pk, "kind": "manual",
         "value_type": "enum", "values": []},
        format="json",
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )  # fmt: skip
    assert response.status_code == 400
    assert "枚举" in response.json()["values"][0]
