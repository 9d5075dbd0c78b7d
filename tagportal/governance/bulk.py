"""Bulk change requests from an uploaded CSV or Excel file, validated row by row.

One row is one change. Nothing is saved when any row is wrong: the answer is a
report naming each bad row (as numbered in the spreadsheet: the header is row 1),
its column and what is wrong.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from tagportal.catalog.models import Brand, Category, Region, Tag
from tagportal.catalog.services import create_tag
from tagportal.core import spreadsheets, uploads

from . import services
from .choices import ChangeKind

#: Changes per file.
MAX_ROWS = 5000
#: Rows read at most (the header and blank rows included) before the file is refused.
READ_ROWS = 2 * MAX_ROWS + 1
#: Columns read at most (the known columns are fewer; the rest may be blank).
MAX_COLUMNS = 32
#: Column names, with the Chinese headers accepted for each.
COLUMNS = {
    "action": ("操作",),
    "brand": ("品牌",),
    "code": ("编码", "标签编码"),
    "name": ("中文名", "名称"),
    "name_en": ("英文名",),
    "description": ("描述", "说明"),
    "category": ("分类",),
    "kind": ("标签类型",),
    "value_type": ("值类型",),
    "values": ("取值",),
    "unit": ("单位",),
    "refresh_mode": ("更新方式",),
    "schedule": ("调度",),
    "definition": ("规则定义", "定义"),
    "regions": ("地域",),
    "owner": ("负责人",),
    "merge_into": ("合并到",),
    "rollback_to": ("回滚到版本",),
    "reason": ("原因", "备注"),
}
ACTIONS = {
    "create": ChangeKind.CREATE, "新建": ChangeKind.CREATE,
    "update": ChangeKind.UPDATE, "修改": ChangeKind.UPDATE,
    "deprecate": ChangeKind.DEPRECATE, "弃用": ChangeKind.DEPRECATE,
    "retire": ChangeKind.RETIRE, "下线": ChangeKind.RETIRE,
    "restore": ChangeKind.RESTORE, "恢复": ChangeKind.RESTORE,
    "merge": ChangeKind.MERGE, "合并": ChangeKind.MERGE,
    "rollback": "rollback", "回滚": "rollback",
}  # fmt: skip
FIELD_COLUMNS = (
    "name", "name_en", "description", "category", "kind", "value_type", "values", "unit", "refresh_mode",
    "schedule", "definition", "regions", "owner",
)  # fmt: skip


@dataclass
class RowError:
    row: int
    column: str
    message: str


@dataclass
class BulkFileError(Exception):
    errors: list[RowError] = field(default_factory=list)
    message: str = ""

    def as_dict(self) -> dict:
        return {
            "detail": self.message
            or _("The file has errors; nothing was saved. Fix the rows below and upload it again."),
            "errors": [{"row": e.row, "column": e.column, "message": e.message} for e in self.errors],
        }

    def __str__(self):
        return "; ".join(f"row {e.row} {e.column}: {e.message}" for e in self.errors) or self.message


#: The name of the template file.
TEMPLATE_NAME = "tag-changes-template.csv"


def template_csv() -> bytes:
    """A template file with the columns and example rows (UTF-8 with BOM, opens in Excel)."""
    rows = [
        ["create", "ruiyan", "", "到店偏好时段", "Preferred visit time", "近90天最常到店的时段", "behavior/visit",
         "behavior", "enum", "morning|上午|Morning; afternoon|下午|Afternoon; evening|晚上|Evening", "", "batch", "",
         '{"type": "preference", "pick": "most_frequent", "source": "events", "field": "properties.daypart", '
         '"where": [{"field": "type", "op": "eq", "value": "store_visit"}], "window": {"last_days": 90}}',
         "", "", "", "", "新增运营需要的标签"],
        ["update", "ruiyan", "yimei_visit_store_visits_90d", "", "", "近90天到店次数（含预约到店）"] + [""] * 13,
        ["deprecate", "ruiyan", "yimei_campaign_double11_buyer"] + [""] * 16,
        ["merge", "ruiyan", "yimei_online_content_seeded_30d"] + [""] * 13
        + ["yimei_online_mp_active_30d", "", "重复标签"],
    ]  # fmt: skip
    return spreadsheets.csv_bytes(list(COLUMNS), rows)


def read_rows(upload) -> list[dict]:
    """Rows of a CSV (UTF-8, UTF-8 with BOM, or GB18030 as saved by Chinese Excel) or an .xlsx file.

    The file is read as a stream and refused as soon as it passes the caps: the upload
    size, :data:`MAX_ROWS` rows, :data:`MAX_COLUMNS` columns (an Excel file by its real
    extent, never its declared dimension; its zip entries by their unpacked size)."""
    name = (getattr(upload, "name", "") or "").lower()
    try:
        uploads.check_size(upload)
        source = upload.open("rb") if hasattr(upload, "open") else upload
        if name.endswith((".xlsx", ".xlsm")) or uploads.is_zip(uploads.head(source, 4)):
            table = uploads.xlsx_rows(source, max_rows=READ_ROWS, max_columns=MAX_COLUMNS)
        else:
            table = uploads.csv_rows(source, max_rows=READ_ROWS, max_columns=MAX_COLUMNS)
    except uploads.UploadError as exc:
        if exc.code == "too_many_rows":
            raise BulkFileError(message=_("At most %(n)s rows per file.") % {"n": MAX_ROWS}) from exc
        raise BulkFileError(message=exc.message) from exc
    if not table:
        raise BulkFileError(message=_("The file is empty."))
    header = [_column_name(h) for h in table[0]]
    unknown = [table[0][i] for i, h in enumerate(header) if h is None and str(table[0][i] or "").strip()]
    if unknown:
        raise BulkFileError(
            [
                RowError(1, str(u), _("Unknown column; known: %(cols)s") % {"cols": ", ".join(COLUMNS)})
                for u in unknown
            ]
        )
    for required in ("action", "code"):
        if required not in header:
            raise BulkFileError([RowError(1, required, _("The column is missing."))])
    rows = []
    for number, values in enumerate(table[1:], start=2):
        if not any(str(v or "").strip() for v in values):
            continue
        row = {h: ("" if v is None else str(v).strip()) for h, v in zip(header, values, strict=False) if h}
        row["_row"] = number
        rows.append(row)
    if len(rows) > MAX_ROWS:
        raise BulkFileError(message=_("At most %(n)s rows per file.") % {"n": MAX_ROWS})
    if not rows:
        raise BulkFileError(message=_("The file has no rows below its header."))
    return rows


def _column_name(header) -> str | None:
    text = str(header or "").strip().lower()
    for name, aliases in COLUMNS.items():
        if text == name or text in aliases:
            return name
    return None


def parse_values(text: str):
    """Values as JSON, or ``code|中文|English[|min|max]`` entries separated by ``;`` or new lines."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        return json.loads(text)
    values = []
    for entry in [e for chunk in text.splitlines() for e in chunk.split(";")]:
        if not entry.strip():
            continue
        parts = [p.strip() for p in entry.split("|")]
        if len(parts) not in (2, 3, 5):
            raise ValueError(
                _("“%(entry)s”: expected code|中文|English or code|中文|English|min|max") % {"entry": entry}
            )
        item = {"code": parts[0], "label": parts[1]}
        if len(parts) >= 3 and parts[2]:
            item["label_en"] = parts[2]
        if len(parts) == 5:
            for key, raw in (("min", parts[3]), ("max", parts[4])):
                if raw:
                    number = float(raw)
                    item[key] = int(number) if number.is_integer() else number
        values.append(item)
    return values


def _category(text: str) -> Category:
    if text.isdigit():
        return Category.objects.get(pk=int(text))
    parent = None
    for code in [c for c in text.replace("›", "/").replace(">", "/").split("/") if c.strip()]:
        parent = Category.objects.get(parent=parent, code=code.strip())
    if parent is None:
        raise Category.DoesNotExist
    return parent


def _field_values(row: dict) -> dict:
    """The non-empty field columns of a row, as model-ready values; raises (column, message)."""
    fields = {}
    for column in FIELD_COLUMNS:
        text = row.get(column, "")
        if not text:
            continue
        try:
            if column == "values":
                fields["values"] = parse_values(text)
            elif column == "definition":
                fields["definition"] = json.loads(text)
            elif column == "regions":
                fields["regions"] = [
                    c.strip() for c in text.replace("、", ",").replace("，", ",").split(",") if c.strip()
                ]
            elif column == "category":
                fields["category"] = _category(text)
            else:
                fields[column] = text
        except json.JSONDecodeError as exc:
            raise _Cell(column, _("not valid JSON: %(error)s") % {"error": exc}) from exc
        except (ValueError, TypeError) as exc:
            raise _Cell(column, str(exc)) from exc
        except Category.DoesNotExist as exc:
            raise _Cell(
                column,
                _("unknown category %(path)r (use a path of codes such as behavior/visit)") % {"path": text},
            ) from exc
    return fields


class _Cell(Exception):
    def __init__(self, column, message):
        super().__init__(message)
        self.column, self.message = column, message


#: Error keys of the services, as the file's columns.
ERROR_COLUMNS = {"tag": "code", "merge_target": "merge_into", "changes": "row", "items": "row"}


def _column(key: str) -> str:
    """The file column an error key (``changes.regions``, ``tag``) points at."""
    last = key.split(".")[-1] if key else "row"
    return ERROR_COLUMNS.get(last, last)


def _errors_from_validation(row: int, exc: ValidationError) -> list[RowError]:
    if hasattr(exc, "error_dict"):
        out = []
        for key, messages in exc.message_dict.items():
            column = "row" if key in ("__all__", "items") else _column(key)
            out += [RowError(row, column, str(m)) for m in messages]
        return out
    return [RowError(row, "row", str(m)) for m in exc.messages]


def _spec_for_row(user, row: dict, brands: dict) -> services.ItemSpec:
    number = row["_row"]
    action = ACTIONS.get(row.get("action", "").strip().lower())
    if action is None:
        raise BulkFileError(
            [
                RowError(
                    number,
                    "action",
                    _("Unknown action %(a)r; use one of %(ok)s")
                    % {"a": row.get("action", ""), "ok": ", ".join(k for k in ACTIONS if k.isascii())},
                )
            ]
        )
    brand_code = row.get("brand", "")
    brand = brands.get(brand_code)
    if brand is None:
        raise BulkFileError([RowError(number, "brand", _("Unknown brand %(b)r.") % {"b": brand_code})])
    try:
        fields = _field_values(row)
    except _Cell as cell:
        raise BulkFileError([RowError(number, cell.column, cell.message)]) from cell
    visible = Tag.objects.restrict(user, "view").filter(brand=brand)
    if action == ChangeKind.CREATE:
        regions = fields.pop("regions", [])
        owner = fields.pop("owner", None)
        cell_errors = []
        if owner:
            from django.contrib.auth import get_user_model

            fields["owner"] = get_user_model().objects.filter(username=owner, is_active=True).first()
            if fields["owner"] is None:
                cell_errors.append(RowError(number, "owner", _("Unknown user %(u)r.") % {"u": owner}))
        found = list(Region.objects.filter(code__in=regions))
        unknown = sorted(set(regions) - {r.code for r in found})
        if unknown:
            cell_errors.append(
                RowError(
                    number, "regions", _("Unknown region(s): %(codes)s.") % {"codes": ", ".join(unknown)}
                )
            )
        if cell_errors:
            raise BulkFileError(cell_errors)
        missing = [c for c in ("name", "category", "kind", "value_type") if c not in fields]
        if missing:
            raise BulkFileError([RowError(number, c, _("Required for a new tag.")) for c in missing])
        try:
            tag = create_tag(
                user, brand=brand, code=row.get("code", ""), regions=found,
                reason=_("Bulk upload, row %(n)s") % {"n": number}, **fields,
            )  # fmt: skip
        except ValidationError as exc:
            raise BulkFileError(_errors_from_validation(number, exc)) from exc
        return services.ItemSpec(kind=ChangeKind.CREATE, tag=tag)
    tag = visible.filter(code=row.get("code", "")).first()
    if tag is None:
        raise BulkFileError(
            [
                RowError(
                    number,
                    "code",
                    _("Unknown tag %(c)r in brand %(b)s.") % {"c": row.get("code"), "b": brand_code},
                )
            ]
        )
    if action == "rollback":
        try:
            version = int(row.get("rollback_to", ""))
        except ValueError as exc:
            raise BulkFileError(
                [RowError(number, "rollback_to", _("Give the version number to roll back to."))]
            ) from exc
        return services.ItemSpec(kind=ChangeKind.UPDATE, tag=tag, rollback_to=version)
    if action == ChangeKind.UPDATE:
        if "category" in fields:
            fields["category"] = fields["category"].pk
        if not fields:
            raise BulkFileError([RowError(number, "row", _("An update needs at least one field to change."))])
        return services.ItemSpec(kind=ChangeKind.UPDATE, tag=tag, changes=fields)
    target = None
    if action == ChangeKind.MERGE:
        target = visible.filter(code=row.get("merge_into", "")).first()
        if target is None:
            raise BulkFileError(
                [
                    RowError(
                        number,
                        "merge_into",
                        _("Unknown tag %(c)r to merge into.") % {"c": row.get("merge_into", "")},
                    )
                ]
            )
    return services.ItemSpec(kind=action, tag=tag, merge_target=target)


def propose_from_file(
    user, upload, title: str = "", submit_now: bool = True, confirm_dependents: bool = False
):
    """One change request for all rows of a file, or a :class:`BulkFileError` and nothing saved."""
    if not user.has_perm("governance.add_changerequest"):
        raise PermissionDenied(_("You may not propose changes."))
    rows = read_rows(upload)
    brands = {b.code: b for b in Brand.objects.restrict(user, "view")}
    errors: list[RowError] = []
    try:
        with transaction.atomic():
            specs, spec_rows = [], []
            for row in rows:
                try:
                    with transaction.atomic():  # a savepoint per row: later rows see earlier new tags
                        specs.append(_spec_for_row(user, row, brands))
                        spec_rows.append(row["_row"])
                except BulkFileError as exc:
                    errors += exc.errors
                except PermissionDenied as exc:
                    errors.append(RowError(row["_row"], "brand", str(exc)))
            if errors:
                raise BulkFileError(errors)
            try:
                return services.propose(
                    user, specs,
                    title=title or _("Bulk upload: %(name)s (%(n)s changes)") % {"name": getattr(upload, "name", ""), "n": len(specs)},
                    submit_now=submit_now, confirm_dependents=confirm_dependents, is_bulk=True,
                    source_file=getattr(upload, "name", "")[:255],
                )  # fmt: skip
            except ValidationError as exc:
                raise BulkFileError(_map_item_errors(exc, spec_rows)) from exc
            except PermissionDenied as exc:
                raise BulkFileError(message=str(exc)) from exc
    except services.DependentsNeedConfirmation as exc:
        raise BulkFileError(
            [RowError(0, "confirm_dependents", str(exc))],
            message=_("Other tags read tags this file removes: %(deps)s. Upload again with confirmation.")
            % {"deps": json.dumps(exc.extra.get("dependents", {}), ensure_ascii=False)},
        ) from exc


def _map_item_errors(exc: ValidationError, spec_rows: list[int]) -> list[RowError]:
    errors = []
    for key, messages in exc.message_dict.items():
        row = spec_rows[0] if len(spec_rows) == 1 else 0
        if key.startswith("items[") and "]" in key:
            index = int(key[len("items[") : key.index("]")])
            row = spec_rows[index] if index < len(spec_rows) else 0
            key = key[key.index("]") + 2 :] or "row"
        column = _column(key)
        errors += [RowError(row, column, str(m)) for m in messages]
    return errors
