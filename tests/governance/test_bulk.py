"""Bulk change requests from an uploaded CSV (UTF-8 with BOM, GB18030 with Chinese
headers) or Excel file: one request for the whole file, or a row-level report and
nothing saved."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from openpyxl import Workbook

from tagportal.catalog import services as catalog
from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Tag, TagAlias
from tagportal.governance import bulk
from tagportal.governance.choices import ChangeKind, RequestState
from tagportal.governance.models import ChangeRequest

from ..conftest import client_for
from .conftest import BOOL_DEF, CR_URL, bool_tag, composite_tag, draft_tag, fresh, governance_state, publish

BULK_URL = f"{CR_URL}bulk/"
HEADER = [
    "action",
    "brand",
    "code",
    "name",
    "category",
    "kind",
    "value_type",
    "values",
    "definition",
    "description",
    "merge_into",
    "regions",
    "owner",
]
CN_HEADER = [
    "操作",
    "品牌",
    "编码",
    "中文名",
    "分类",
    "标签类型",
    "值类型",
    "取值",
    "规则定义",
    "描述",
    "合并到",
    "地域",
    "负责人",
]
BOOL_JSON = json.dumps(BOOL_DEF, ensure_ascii=False)


@pytest.fixture
def bw(gw):
    """Published tags to deprecate, to merge and to merge into."""
    gw.to_deprecate = publish(draft_tag(gw.own_brand, gw.category, "qi_yong"))
    gw.to_merge = publish(draft_tag(gw.own_brand, gw.category, "chong_fu"))
    gw.merge_target = publish(draft_tag(gw.own_brand, gw.category, "bao_liu"))
    return gw


def good_rows(
    w, create_action="create", update_action="update", deprecate_action="deprecate", merge_action="merge"
):
    return [
        [create_action, "ruiyan", "yimei_visit_fu_gou", "复购意向", "visit", "behavior", "boolean", "", BOOL_JSON, "近30天下单2次以上", ""],
        [update_action, "ruiyan", w.own_tag.code, "", "", "", "", "low|低|Low||3; high|高|High|3|", "", "近90天到店次数（含预约）", ""],
        [deprecate_action, "ruiyan", w.to_deprecate.code, "", "", "", "", "", "", "", ""],
        [merge_action, "ruiyan", w.to_merge.code, "", "", "", "", "", "", "", w.merge_target.code],
    ]  # fmt: skip


def _padded(rows, header):
    return [list(row) + [""] * (len(header) - len(row)) for row in rows]


def csv_file(rows, header=HEADER, encoding="utf-8-sig", name="changes.csv"):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(_padded(rows, header))
    return SimpleUploadedFile(name, out.getvalue().encode(encoding), content_type="text/csv")


def xlsx_file(rows, header=HEADER, name="changes.xlsx"):
    book = Workbook()
    sheet = book.active
    sheet.append(header)
    for row in _padded(rows, header):
        sheet.append([cell if cell != "" else None for cell in row])
    data = io.BytesIO()
    book.save(data)
    return SimpleUploadedFile(
        name,
        data.getvalue(),
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def upload(user, upload_file, **data):
    return client_for(user).post(BULK_URL, {"file": upload_file, **data}, format="multipart")


def assert_one_bulk_request(w, response, source_file):
    assert response.status_code == 201, response.content
    body = response.json()
    assert ChangeRequest.objects.count() == 1
    cr = ChangeRequest.objects.get(pk=body["id"])
    assert cr.is_bulk and body["is_bulk"] is True
    assert cr.source_file == source_file
    assert cr.state == RequestState.SUBMITTED
    assert cr.proposer == w.operator
    assert body["kind"] == "bulk"
    assert [(i.kind, i.tag.code) for i in cr.items.order_by("position")] == [
        (ChangeKind.CREATE, "yimei_visit_fu_gou"),
        (ChangeKind.UPDATE, w.own_tag.code),
        (ChangeKind.DEPRECATE, w.to_deprecate.code),
        (ChangeKind.MERGE, w.to_merge.code),
    ]
    new = Tag.objects.get(code="yimei_visit_fu_gou")
    assert new.status == TagStatus.IN_REVIEW
    assert new.name == "复购意向" and new.definition == BOOL_DEF and new.category == w.category
    update = cr.items.get(kind=ChangeKind.UPDATE)
    assert update.changes == {
        "description": "近90天到店次数（含预约）",
        "values": [
            {"code": "low", "label": "低", "label_en": "Low", "max": 3},
            {"code": "high", "label": "高", "label_en": "High", "min": 3},
        ],
    }
    assert cr.items.get(kind=ChangeKind.MERGE).merge_target == w.merge_target
    # nothing is live before the review
    assert fresh(w.own_tag).published_version == 1
    assert fresh(w.to_deprecate).status == TagStatus.PUBLISHED
    return cr


def test_good_csv_with_bom(bw):
    response = upload(bw.operator, csv_file(good_rows(bw)))
    assert_one_bulk_request(bw, response, "changes.csv")


def test_good_csv_gb18030_with_chinese_headers_and_actions(bw):
    rows = good_rows(bw, "新建", "修改", "弃用", "合并")
    file = csv_file(rows, header=CN_HEADER, encoding="gb18030", name="标签变更.csv")
    with pytest.raises(UnicodeDecodeError):
        file.read().decode("utf-8")
    file.seek(0)
    response = upload(bw.operator, file)
    assert_one_bulk_request(bw, response, "标签变更.csv")


def test_good_xlsx(bw):
    response = upload(bw.operator, xlsx_file(good_rows(bw), header=CN_HEADER))
    assert_one_bulk_request(bw, response, "changes.xlsx")


def test_approving_the_bulk_once_applies_all(bw):
    response = upload(bw.operator, csv_file(good_rows(bw)))
    cr = ChangeRequest.objects.get(pk=response.json()["id"])
    assert client_for(bw.operator).post(f"{CR_URL}{cr.pk}/approve/", {}, format="json").status_code == 403
    response = client_for(bw.steward).post(f"{CR_URL}{cr.pk}/approve/", {"apply": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "applied"
    assert [i["produced_version"] for i in response.json()["items"]] == [1, 2, None, None]
    new = Tag.objects.get(code="yimei_visit_fu_gou")
    assert new.status == TagStatus.PUBLISHED and new.published_version == 1
    tag = fresh(bw.own_tag)
    assert tag.published_version == 2 and tag.description == "近90天到店次数（含预约）"
    assert fresh(bw.to_deprecate).status == TagStatus.DEPRECATED
    assert fresh(bw.to_merge).status == TagStatus.RETIRED
    assert TagAlias.objects.get(code=bw.to_merge.code).target == bw.merge_target
    assert catalog.resolve_code(Tag.objects.all(), "ruiyan", bw.to_merge.code)[0] == bw.merge_target


def test_bulk_answer_shows_the_submitted_state(bw):
    response = upload(bw.operator, csv_file(good_rows(bw)))
    assert response.status_code == 201
    assert response.json()["state"] == "submitted"
    assert response.json()["submitted_at"]


def test_bulk_as_draft_and_title(bw):
    response = upload(bw.operator, csv_file(good_rows(bw)), submit="false", title="双十一前清理")
    assert response.status_code == 201
    cr = ChangeRequest.objects.get(pk=response.json()["id"])
    assert cr.state == RequestState.DRAFT and cr.title == "双十一前清理"
    assert Tag.objects.get(code="yimei_visit_fu_gou").status == TagStatus.DRAFT


def test_bulk_rollback_row(bw):
    first = upload(bw.operator, csv_file([good_rows(bw)[1]]))
    cr = ChangeRequest.objects.get(pk=first.json()["id"])
    client_for(bw.steward).post(f"{CR_URL}{cr.pk}/approve/", {"apply": True}, format="json")
    assert fresh(bw.own_tag).published_version == 2
    response = upload(
        bw.operator,
        csv_file([["回滚", "ruiyan", bw.own_tag.code, "1"]], header=["操作", "品牌", "编码", "回滚到版本"]),
    )
    assert response.status_code == 201, response.content
    item = ChangeRequest.objects.get(pk=response.json()["id"]).items.get()
    assert item.kind == ChangeKind.UPDATE and item.rollback_to == 1
    assert set(item.changes) == {"description", "values"}


# ---------------------------------------------------------------------------
# Bad rows: a row-level report, nothing saved


def _with_bad_row(w, position, bad):
    rows = good_rows(w)
    rows.insert(position, bad)
    return rows


BAD_ROWS = {
    # name: (the bad row, column expected in the report)
    "unknown-category": (
        ["create", "ruiyan", "yimei_visit_xin", "新标签", "nope/none", "behavior", "boolean", "", BOOL_JSON, "", ""],
        "category",
    ),
    "invalid-json-definition": (
        ["create", "ruiyan", "yimei_visit_xin", "新标签", "visit", "behavior", "boolean", "", "{type: condition", "", ""],
        "definition",
    ),
    "definition-breaks-the-rules": (
        ["update", "ruiyan", "yimei_visit_bao_liu", "", "", "", "", "", '{"type": "magic"}', "", ""],
        "definition",
    ),
    "unknown-tag-code": (["update", "ruiyan", "yimei_visit_ghost", "新名", "", "", "", "", "", "", ""], "code"),
    "bad-values-cell": (
        ["update", "ruiyan", "yimei_visit_bao_liu", "", "", "", "", "low|低|Low|x", "", "", ""],
        "values",
    ),
    "bad-values-bounds": (
        ["update", "ruiyan", "yimei_visit_bao_liu", "", "", "", "", "low|低|Low|abc|", "", "", ""],
        "values",
    ),
    "unknown-action": (["rename", "ruiyan", "yimei_visit_bao_liu", "", "", "", "", "", "", "", ""], "action"),
    "unknown-brand": (["update", "nobrand", "yimei_visit_bao_liu", "新名", "", "", "", "", "", "", ""], "brand"),
    "other-line-brand": (["update", "qingquan", "shipin_visit_gou_mai_ci_shu", "新名", "", "", "", "", "", "", ""], "brand"),
    "create-missing-kind": (
        ["create", "ruiyan", "yimei_visit_xin", "新标签", "visit", "", "boolean", "", BOOL_JSON, "", ""],
        "kind",
    ),
    "create-code-breaks-naming-rule": (
        ["create", "ruiyan", "bad_code", "新标签", "visit", "behavior", "boolean", "", BOOL_JSON, "", ""],
        "code",
    ),
    "update-without-fields": (["update", "ruiyan", "yimei_visit_bao_liu", "", "", "", "", "", "", "", ""], "row"),
    "merge-into-unknown": (["merge", "ruiyan", "yimei_visit_bao_liu", "", "", "", "", "", "", "", "yimei_visit_ghost"], "merge_into"),
    "deprecate-a-draft": (["deprecate", "ruiyan", "yimei_visit_cao_gao", "", "", "", "", "", "", "", ""], "kind"),
    # row 3 already updates the tag: the report names the repeated row
    "same-tag-twice": (["deprecate", "ruiyan", "yimei_visit_dao_dian_ci_shu", "", "", "", "", "", "", "", ""], ("code", "row")),
    # owners and regions are checked, not silently dropped
    "create-unknown-owner": (
        ["create", "ruiyan", "yimei_visit_xin", "新标签", "visit", "behavior", "boolean", "", BOOL_JSON, "", "", "", "ghost"],
        "owner",
    ),
    "create-unknown-region": (
        ["create", "ruiyan", "yimei_visit_xin", "新标签", "visit", "behavior", "boolean", "", BOOL_JSON, "", "", "atlantis", ""],
        "regions",
    ),
    "update-unknown-owner": (["update", "ruiyan", "yimei_visit_bao_liu", "", "", "", "", "", "", "", "", "", "ghost"], "owner"),
    "update-unknown-region": (["update", "ruiyan", "yimei_visit_bao_liu", "", "", "", "", "", "", "", "", "atlantis", ""], "regions"),
}  # fmt: skip
#: The same checks on Excel files (the reading differs, not the checking).
XLSX_CASES = [
    "unknown-category", "invalid-json-definition", "definition-breaks-the-rules", "unknown-tag-code",
    "bad-values-cell", "unknown-action", "create-code-breaks-naming-rule", "merge-into-unknown",
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_ROWS)
def test_bad_row_is_reported_and_nothing_saved(bw, case):
    draft_tag(bw.own_brand, bw.category, "cao_gao")
    _check_bad_row(bw, case, "csv")


def test_bad_rows_in_excel_files_too(bw):
    draft_tag(bw.own_brand, bw.category, "cao_gao")
    for case in XLSX_CASES:
        _check_bad_row(bw, case, "xlsx")


def _check_bad_row(bw, case, fmt):
    bad, column = BAD_ROWS[case]
    rows = _with_bad_row(bw, 2, bad)  # header row 1, two good rows, the bad one is row 4
    file = csv_file(rows) if fmt == "csv" else xlsx_file(rows)
    before = governance_state()
    response = upload(bw.operator, file)
    assert response.status_code == 400, (case, response.content)
    body = response.json()
    assert "nothing was saved" in body["detail"]
    errors = body["errors"]
    assert errors, (case, body)
    columns = column if isinstance(column, tuple) else (column,)
    assert {e["row"] for e in errors} == {4}, (case, errors)
    assert all(e["column"] in columns for e in errors), (case, errors)
    assert all(e["message"] for e in errors)
    assert governance_state() == before, case
    assert not Tag.objects.filter(code__in=["yimei_visit_fu_gou", "yimei_visit_xin"]).exists()


def test_every_bad_row_is_reported_with_blank_lines_counted(bw):
    rows = good_rows(bw)
    rows.insert(1, [""] * len(HEADER))  # a blank line at row 3 is skipped but keeps its number
    rows.append(BAD_ROWS["unknown-tag-code"][0])  # row 7
    rows.append(BAD_ROWS["unknown-category"][0])  # row 8
    before = governance_state()
    response = upload(bw.operator, csv_file(rows))
    assert response.status_code == 400
    assert [(e["row"], e["column"]) for e in response.json()["errors"]] == [(7, "code"), (8, "category")]
    assert governance_state() == before


def test_unknown_category_message_names_the_cell(bw):
    response = upload(bw.operator, csv_file([BAD_ROWS["unknown-category"][0]]))
    (error,) = response.json()["errors"]
    assert error == {"row": 2, "column": "category", "message": error["message"]}
    assert "nope/none" in error["message"]


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (b"", "empty.csv", "empty"),
        (b"action,brand,code\n", "header.csv", "no rows"),
        (b"action,brand,code,colour\nupdate,ruiyan,x,red\n", "col.csv", None),
        (b"action,brand\nupdate,ruiyan\n", "nocode.csv", None),
        (b"PK\x03\x04 not really a zip", "broken.xlsx", "Excel"),
    ],
)
def test_bad_files(bw, content, name, expected):
    before = governance_state()
    response = upload(bw.operator, SimpleUploadedFile(name, content))
    assert response.status_code == 400, response.content
    body = response.json()
    if expected:
        assert expected in body["detail"]
    else:
        assert body["errors"][0]["row"] == 1
    assert governance_state() == before


def test_no_file_is_400(bw):
    response = client_for(bw.operator).post(BULK_URL, {}, format="multipart")
    assert response.status_code == 400
    assert "file" in response.json()


@pytest.mark.parametrize("role", ["analyst", "nobody"])
def test_bulk_refused_for_roles_that_do_not_propose(bw, role):
    before = governance_state()
    response = upload(getattr(bw, role), csv_file(good_rows(bw)))
    assert response.status_code == 403
    assert governance_state() == before


def test_bulk_by_another_lines_steward_reports_the_brand(bw):
    before = governance_state()
    response = upload(bw.other_steward, csv_file(good_rows(bw)))
    assert response.status_code == 400
    assert {(e["row"], e["column"]) for e in response.json()["errors"]} == {
        (r, "brand") for r in (2, 3, 4, 5)
    }
    assert governance_state() == before


def test_bulk_removing_a_tag_others_read_needs_confirmation(bw):
    base = publish(bool_tag(bw.own_brand, bw.category, "gao_yi_xiang"))
    reader = publish(composite_tag(bw.own_brand, bw.category, "zu_he", base.code))
    rows = [["retire", "ruiyan", base.code, "", "", "", "", "", "", "", ""]]
    before = governance_state()
    response = upload(bw.operator, csv_file(rows))
    assert response.status_code == 400
    assert reader.code in response.json()["detail"]
    assert response.json()["errors"][0]["column"] == "confirm_dependents"
    assert governance_state() == before
    response = upload(bw.operator, csv_file(rows), confirm_dependents="true")
    assert response.status_code == 201
    assert ChangeRequest.objects.get().confirm_dependents is True


# ---------------------------------------------------------------------------
# The template


@pytest.mark.slow
def test_template_is_valid_for_the_demo_data(bw):
    catalog.apply_template(bw.own_brand, "medical_aesthetics", owner=bw.steward)
    response = client_for(bw.operator).get(f"{CR_URL}bulk-template/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    content = response.content
    assert content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    assert rows[0] == list(bulk.COLUMNS)
    assert [r[0] for r in rows[1:]] == ["create", "update", "deprecate", "merge"]
    assert all(len(r) == len(rows[0]) for r in rows)

    before = governance_state()
    response = upload(bw.operator, SimpleUploadedFile("template.csv", content), confirm_dependents="true")
    assert response.status_code == 201, response.content
    cr = ChangeRequest.objects.get(pk=response.json()["id"])
    assert [i.kind for i in cr.items.all()] == ["create", "update", "deprecate", "merge"]
    assert governance_state() != before
    response = client_for(bw.steward).post(f"{CR_URL}{cr.pk}/approve/", {"apply": True}, format="json")
    assert response.status_code == 200, response.content
    assert fresh(cr).state == RequestState.APPLIED
    assert catalog.resolve_code(Tag.objects.all(), "ruiyan", "yimei_online_content_seeded_30d")[0].code == (
        "yimei_online_mp_active_30d"
    )


def test_template_for_anyone_who_views_requests(bw):
    assert client_for(bw.analyst).get(f"{CR_URL}bulk-template/").status_code == 200
    assert client_for(bw.nobody).get(f"{CR_URL}bulk-template/").status_code == 403


def test_parse_values():
    assert bulk.parse_values("") == []
    assert bulk.parse_values("dry|干性|Dry;oily|油性") == [
        {"code": "dry", "label": "干性", "label_en": "Dry"},
        {"code": "oily", "label": "油性"},
    ]
    assert bulk.parse_values("low|低|Low||2.5\nhigh|高|High|2.5|") == [
        {"code": "low", "label": "低", "label_en": "Low", "max": 2.5},
        {"code": "high", "label": "高", "label_en": "High", "min": 2.5},
    ]
    assert bulk.parse_values('[{"code": "a", "label": "甲"}]') == [{"code": "a", "label": "甲"}]
    for bad in ("a", "a|b|c|d", "a|b|c|x|"):
        with pytest.raises(ValueError):
            bulk.parse_values(bad)
