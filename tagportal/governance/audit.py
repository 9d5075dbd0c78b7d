"""The audit trail: who changed what, when, and who approved it, for a period and a
business line — as rows for the API and as a CSV file a regulator can open in Excel."""

from __future__ import annotations

import datetime as dt

from django.utils.translation import gettext as _

from tagportal.catalog.history import changed_field_names
from tagportal.catalog.models import Tag
from tagportal.core import spreadsheets
from tagportal.core.days import beijing_midnight, beijing_text

from .choices import AuditAction
from .models import AuditEvent

COLUMNS = [
    ("time", "时间（北京时间）"),
    ("business_line", "业务线"),
    ("brand", "品牌"),
    ("tag_code", "标签编码"),
    ("tag_name", "标签名称"),
    ("event", "事件"),
    ("actor", "操作人"),
    ("change_request", "变更单"),
    ("proposer", "提议人"),
    ("approver", "审批人"),
    ("fields", "变更字段"),
    ("version", "版本"),
    ("reason", "原因"),
]


#: Days are Beijing days, whatever zone the portal displays.


def _bounds(start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    return beijing_midnight(start), beijing_midnight(end + dt.timedelta(days=1))


def _local(moment) -> str:
    return beijing_text(moment, "%Y-%m-%d %H:%M:%S")


def _name(user) -> str:
    return user.username if user is not None else ""


def audit_rows(user, start: dt.date, end: dt.date, business_line=None) -> list[dict]:
    """Governance decisions and every recorded edit of a tag, oldest first."""
    low, high = _bounds(start, end)
    events = (
        AuditEvent.objects.restrict(user, "view")
        .filter(at__gte=low, at__lt=high)
        .select_related(
            "actor", "tag", "business_line", "brand", "change_request__proposer", "change_request__reviewer"
        )
    )
    tags = Tag.objects.restrict(user, "view")
    if business_line is not None:
        events = events.filter(business_line=business_line)
        tags = tags.filter(business_line=business_line)
    rows = []
    labels = dict(AuditAction.choices)
    for event in events:
        cr = event.change_request
        rows.append(
            {
                "at": event.at,
                "time": _local(event.at),
                "business_line": event.business_line.name,
                "brand": event.brand.name if event.brand else "",
                "tag_code": event.tag.code if event.tag else "",
                "tag_name": event.tag.name if event.tag else "",
                "event": str(labels.get(event.action, event.action)),
                "actor": _name(event.actor),
                "change_request": f"#{cr.pk} {cr.title}" if cr else "",
                "proposer": _name(cr.proposer) if cr else "",
                "approver": _name(cr.reviewer) if cr else "",
                "fields": ", ".join(event.detail.get("fields", [])),
                "version": event.detail.get("version", "") or "",
                "reason": event.detail.get("reason", "") or event.detail.get("note", "") or "",
            }
        )
    history = (
        Tag.history.filter(history_date__gte=low, history_date__lt=high, id__in=tags.values("pk"))
        .select_related("history_user", "business_line", "brand")
        .order_by("id", "history_date", "history_id")
    )
    kinds = {"+": _("Created"), "~": _("Edited"), "-": _("Deleted")}
    previous = {}
    records = list(history)
    earlier = {}
    first_ids = {r.id for r in records}
    # the record just before the period, per tag, so the first change in it shows its fields
    for record in Tag.history.filter(id__in=first_ids, history_date__lt=low).order_by("id", "history_date"):
        earlier[record.id] = record
    for record in records:
        before = previous.get(record.id, earlier.get(record.id))
        rows.append(
            {
                "at": record.history_date,
                "time": _local(record.history_date),
                "business_line": record.business_line.name if record.business_line_id else "",
                "brand": record.brand.name if record.brand_id else "",
                "tag_code": record.code,
                "tag_name": record.name,
                "event": str(kinds.get(record.history_type, record.history_type)),
                "actor": _name(record.history_user),
                "change_request": "",
                "proposer": "",
                "approver": "",
                "fields": ", ".join(changed_field_names(before, record)) if before is not None else "",
                "version": record.published_version or "",
                "reason": record.history_change_reason or "",
            }
        )
        previous[record.id] = record
    rows.sort(key=lambda r: r["at"])
    for row in rows:
        row.pop("at")
    return rows


def to_csv(rows: list[dict]) -> bytes:
    """CSV with Chinese headers (UTF-8 with a BOM, so that Excel shows Chinese correctly)."""
    return spreadsheets.csv_bytes(
        [header for _key, header in COLUMNS], ([row.get(key, "") for key, _header in COLUMNS] for row in rows)
    )


def csv_filename(start: dt.date, end: dt.date) -> str:
    return f"tagportal-audit-{start:%Y%m%d}-{end:%Y%m%d}.csv"
