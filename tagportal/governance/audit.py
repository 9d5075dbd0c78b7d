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


#: The kinds of a tag's recorded edits (simple-history's ``history_type``), as filter values.
HISTORY_KINDS = {"created": "+", "edited": "~", "deleted": "-"}


def history_kind_labels() -> dict[str, str]:
    return {"created": _("Created"), "edited": _("Edited"), "deleted": _("Deleted")}


def kind_choices() -> list[tuple[str, str]]:
    """Every event kind of the trail: the governance decisions, then a tag's edits."""
    return [*((value, str(label)) for value, label in AuditAction.choices), *history_kind_labels().items()]


class AuditTrail:
    """The audit trail of a period, oldest first, filtered by business line, brand,
    event kind and actor (a part of the username). It counts and sorts only keys and
    builds the rows of the slice asked for, so a paginator shows one page quickly;
    ``list(trail)`` builds them all (the CSV, the API)."""

    def __init__(
        self, user, start: dt.date, end: dt.date, business_line=None, *, brand=None, kind="", actor=""
    ):
        low, high = _bounds(start, end)
        events = AuditEvent.objects.restrict(user, "view").filter(at__gte=low, at__lt=high)
        tags = Tag.objects.restrict(user, "view")
        history = Tag.history.filter(history_date__gte=low, history_date__lt=high)
        if business_line is not None:
            events = events.filter(business_line=business_line)
            tags = tags.filter(business_line=business_line)
        if brand is not None:
            events = events.filter(brand=brand)
            tags = tags.filter(brand=brand)
        if kind in HISTORY_KINDS:
            events = events.none()
            history = history.filter(history_type=HISTORY_KINDS[kind])
        elif kind:
            events = events.filter(action=kind)
            history = history.none()
        if actor:
            events = events.filter(actor__username__icontains=actor)
            history = history.filter(history_user__username__icontains=actor)
        self.events = events
        self.history = history.filter(id__in=tags.values("pk"))
        self._keys = None

    def keys(self) -> list[tuple]:
        if self._keys is None:
            keys = [(at, 0, pk) for at, pk in self.events.values_list("at", "pk")]
            keys += [(at, 1, pk) for at, pk in self.history.values_list("history_date", "history_id")]
            keys.sort()
            self._keys = keys
        return self._keys

    def count(self) -> int:
        return len(self.keys())

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index):
        if isinstance(index, slice):
            return _rows(self.keys()[index])
        return _rows([self.keys()[index]])[0]

    def __iter__(self):
        return iter(self[:])


def audit_rows(user, start: dt.date, end: dt.date, business_line=None, **filters) -> list[dict]:
    """Governance decisions and every recorded edit of a tag, oldest first."""
    return list(AuditTrail(user, start, end, business_line, **filters))


def _rows(keys: list[tuple]) -> list[dict]:
    event_ids = [pk for _at, source, pk in keys if source == 0]
    history_ids = [pk for _at, source, pk in keys if source == 1]
    events = AuditEvent.objects.filter(pk__in=event_ids).select_related(
        "actor", "tag", "business_line", "brand", "change_request__proposer", "change_request__reviewer"
    )
    records = Tag.history.filter(history_id__in=history_ids).select_related(
        "history_user", "business_line", "brand"
    )
    built = {(0, e.pk): _event_row(e) for e in events}
    befores = _predecessors(list(records))
    built.update({(1, r.history_id): _history_row(r, befores.get(r.history_id)) for r in records})
    return [built[(source, pk)] for _at, source, pk in keys]


def _predecessors(records) -> dict:
    """For each historical record: the record of the same tag just before it (any time)."""
    if not records:
        return {}
    latest = max(r.history_date for r in records)
    wanted = {r.history_id for r in records}
    found, last = {}, {}
    earlier = Tag.history.filter(id__in={r.id for r in records}, history_date__lte=latest).order_by(
        "id", "history_date", "history_id"
    )
    for record in earlier.iterator():
        if record.history_id in wanted:
            found[record.history_id] = last.get(record.id)
        last[record.id] = record
    return found


def _event_row(event) -> dict:
    cr = event.change_request
    return {
        "time": _local(event.at),
        "business_line": event.business_line.name,
        "brand": event.brand.name if event.brand else "",
        "tag_code": event.tag.code if event.tag else "",
        "tag_name": event.tag.name if event.tag else "",
        "event": str(dict(AuditAction.choices).get(event.action, event.action)),
        "actor": _name(event.actor),
        "change_request": f"#{cr.pk} {cr.title}" if cr else "",
        "proposer": _name(cr.proposer) if cr else "",
        "approver": _name(cr.reviewer) if cr else "",
        "fields": ", ".join(event.detail.get("fields", [])),
        "version": event.detail.get("version", "") or "",
        "reason": event.detail.get("reason", "") or event.detail.get("note", "") or "",
    }


def _history_row(record, before) -> dict:
    kinds = {value: history_kind_labels()[key] for key, value in HISTORY_KINDS.items()}
    return {
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


def fields_in_words(fields: str) -> str:
    """A row's changed fields (``"description, regions"``) by their labels (说明、地域)."""
    return "、".join(Tag.field_label(name) for name in fields.split(", ") if name)


def to_csv(rows: list[dict]) -> bytes:
    """CSV with Chinese headers (UTF-8 with a BOM, so that Excel shows Chinese correctly)."""
    return spreadsheets.csv_bytes(
        [header for _key, header in COLUMNS], ([row.get(key, "") for key, _header in COLUMNS] for row in rows)
    )


def csv_filename(start: dt.date, end: dt.date) -> str:
    return f"tagportal-audit-{start:%Y%m%d}-{end:%Y%m%d}.csv"
