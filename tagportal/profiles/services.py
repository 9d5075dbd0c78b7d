"""State changes of profiles: OneID resolution and merges, splits, imports, demo data.

Views, admin actions, the API, commands and tasks call these. Other apps read
profiles through :func:`lookup_customer` and
:func:`tagportal.profiles.loaders.load_frames` (the engine's input frames).
"""

from __future__ import annotations

import logging
import time as _time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog.models import Brand
from tagportal.core.permissions import may_add_into

from . import importers, oneid, pii
from .choices import IdentityType, ImportKind, ImportStatus
from .models import Customer, Event, Identity, ImportJob, MergeRecord, Order

log = logging.getLogger(__name__)

#: Rows written per ``bulk_create`` call, and between two progress reports.
BATCH = 2000
CHUNK = 10_000
#: Values per ``IN (...)`` lookup.
LOOKUP_CHUNK = 900

#: ``progress(done, total, stage)``
Progress = Callable[[int, int, str], None]


def _nothing(done: int, total: int, stage: str) -> None:
    return None


def oneid_rules() -> tuple[oneid.Rule, ...]:
    """The OneID rules: ``TAGPORTAL_ONEID_RULES`` (a list of dicts with ``name``,
    ``types``, ``priority``, ``never_merges``) when set, else the defaults."""
    configured = getattr(settings, "TAGPORTAL_ONEID_RULES", None)
    if not configured:
        return oneid.DEFAULT_RULES
    rules = tuple(r if isinstance(r, oneid.Rule) else oneid.Rule.from_dict(r) for r in configured)
    oneid.check_rules(rules)
    return rules


def _chunks(values: list, size: int = LOOKUP_CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


# ---------------------------------------------------------------------------
# OneID


@dataclass
class Resolved:
    """What :func:`resolve_identities` did: per record its person and the identity it
    arrived with, and what was created or merged."""

    #: ``record``, ``oneid``, ``customer_id``, ``identity_id`` and ``new`` (how many of the
    #: record's identities were new), one row per record.
    records: pd.DataFrame
    customers_created: int = 0
    identities_created: int = 0
    merges: list[MergeRecord] = field(default_factory=list)


def _hashed_links(links: pd.DataFrame) -> pd.DataFrame:
    """Normalised, hashed links (``record``, ``type``, ``app``, ``value``, ``hash``)."""
    links = links.loc[:, ["record", "type", "app", "value"]].copy()
    links["app"] = links["app"].fillna("").astype(str).str.strip()
    unknown = sorted(set(links["type"]) - set(IdentityType.values))
    if unknown:
        raise ValidationError(
            _("Unknown identity types: %(types)s.") % {"types": ", ".join(map(str, unknown))}
        )
    parts = []
    for type_, group in links.groupby("type", sort=False):
        values, problems = pii.normalise(type_, group["value"])
        bad = problems.notna() | (values == "")
        if bad.any():
            first = group.index[bad.to_numpy(dtype=bool)][0]
            message = problems.loc[first] if isinstance(problems.loc[first], str) else _("Empty value.")
            raise ValidationError(
                _("Identity %(type)s of record %(record)s: %(problem)s")
                % {"type": type_, "record": links.at[first, "record"], "problem": message}
            )
        group = group.assign(value=values)
        distinct = group["value"].unique().tolist()
        hashes = dict(zip(distinct, pii.hash_values(type_, distinct), strict=True))
        group["hash"] = group["value"].map(hashes)
        parts.append(group)
    out = pd.concat(parts) if parts else links.assign(hash=pd.Series(dtype=object))
    return out.sort_index()


def _existing_identities(brand: Brand, hashes: list[str]) -> pd.DataFrame:
    rows = []
    for chunk in _chunks(sorted(set(hashes))):
        rows.extend(
            Identity.objects.filter(brand=brand, value_hash__in=chunk).values_list(
                "pk", "type", "app", "value_hash", "customer_id", "customer__oneid"
            )
        )
    return pd.DataFrame(rows, columns=["identity_id", "type", "app", "hash", "customer_id", "oneid"])


def _guard_identities(brand: Brand, customer_ids: list[int], types: set[str]) -> pd.DataFrame:
    rows = []
    if types:
        for chunk in _chunks(sorted(set(customer_ids))):
            rows.extend(
                Identity.objects.filter(
                    brand=brand, customer_id__in=chunk, type__in=sorted(types)
                ).values_list("pk", "type", "app", "value_hash", "customer_id", "customer__oneid")
            )
    return pd.DataFrame(rows, columns=["identity_id", "type", "app", "hash", "customer_id", "oneid"])


def next_oneid(brand: Brand) -> int:
    return (Customer.objects.filter(brand=brand).aggregate(m=Max("oneid"))["m"] or 0) + 1


def resolve_identities(
    brand: Brand,
    links: pd.DataFrame,
    *,
    rules: tuple[oneid.Rule, ...] | None = None,
    job: ImportJob | None = None,
    reason: str = "",
) -> Resolved:
    """Link the identities of ``links`` (``record``, ``type``, ``app``, ``value`` in clear)
    into people of ``brand``: identities already known keep their person, new ones
    join the person their record resolves to or a new person, and people found to be
    one are merged (recorded as :class:`MergeRecord` with the rule that joined them).

    Atomic; it locks the brand's OneID sequence until the surrounding transaction ends.
    """
    with transaction.atomic():
        return _resolve_identities(brand, links, rules=rules or oneid_rules(), job=job, reason=reason)


def _resolve_identities(brand: Brand, links: pd.DataFrame, *, rules, job, reason: str) -> Resolved:
    Brand.objects.select_for_update().filter(pk=brand.pk).first()
    if len(links) == 0:
        empty = pd.DataFrame(
            {"record": [], "oneid": [], "customer_id": [], "identity_id": [], "new": []}, dtype="int64"
        )
        return Resolved(records=empty)
    hashed = _hashed_links(links)
    known = _existing_identities(brand, hashed["hash"].tolist())
    known = known.merge(hashed[["type", "app", "hash"]].drop_duplicates(), on=["type", "app", "hash"])
    guard_types = {t for rule in rules for t in rule.never_merges}
    guard = _guard_identities(brand, known["customer_id"].tolist(), guard_types)
    context = pd.concat([known, guard], ignore_index=True).drop_duplicates("identity_id")
    first_new = next_oneid(brand)
    resolution = oneid.resolve(
        hashed.assign(value=hashed["hash"])[["record", "type", "app", "value"]],
        context.rename(columns={"hash": "value"})[["type", "app", "value", "oneid"]],
        rules,
        next_oneid=first_new,
    )

    created_customers = 0
    if len(resolution.new_oneids):
        Customer.objects.bulk_create(
            [Customer(brand=brand, oneid=int(o)) for o in resolution.new_oneids], batch_size=BATCH
        )
        created_customers = len(resolution.new_oneids)
    customer_of = dict(
        Customer.objects.filter(brand=brand, oneid__gte=first_new).values_list("oneid", "pk")
    ) | dict(zip(context["oneid"].tolist(), context["customer_id"].tolist(), strict=True))

    merges = []
    for kept, merged, rule in resolution.merges.itertuples(index=False):
        merges.append(
            _merge(brand, customer_of[int(kept)], customer_of[int(merged)], rule=rule, job=job, reason=reason)
        )

    identities = resolution.identities
    new = identities[identities["previous_oneid"].isna() & identities["linked"]]
    created_identities = 0
    if len(new):
        raw = new.rename(columns={"value": "hash"}).merge(
            hashed.drop_duplicates(["type", "app", "hash"])[["type", "app", "hash", "value"]],
            on=["type", "app", "hash"],
            how="left",
        )
        objects = [
            Identity(
                brand_id=brand.pk,
                customer_id=customer_of[int(person)],
                type=type_,
                app=app,
                value_hash=value_hash,
                value=pii.stored_value(type_, value),
                masked=pii.mask(type_, value),
            )
            for type_, app, value_hash, value, person in zip(
                raw["type"], raw["app"], raw["hash"], raw["value"], raw["oneid"], strict=True
            )
        ]
        Identity.objects.bulk_create(objects, batch_size=BATCH)
        created_identities = len(objects)

    # Each record's person, and the first of its identities that belongs to that person.
    ids = _existing_identities(brand, hashed["hash"].tolist())[
        ["identity_id", "type", "app", "hash", "oneid"]
    ]
    per_link = hashed.merge(ids, on=["type", "app", "hash"], how="left")
    per_link = per_link.merge(resolution.records.rename(columns={"oneid": "record_oneid"}), on="record")
    per_link["is_new"] = (
        per_link.merge(
            new[["type", "app", "value"]].rename(columns={"value": "hash"}).assign(_new=True),
            on=["type", "app", "hash"],
            how="left",
        )["_new"]
        .fillna(False)
        .to_numpy(dtype=bool)
    )
    primary = per_link[per_link["oneid"] == per_link["record_oneid"]].drop_duplicates("record")
    records = resolution.records.merge(primary[["record", "identity_id"]], on="record", how="left")
    records["customer_id"] = records["oneid"].map(customer_of).astype("int64")
    records["new"] = (
        records["record"].map(per_link.groupby("record")["is_new"].sum()).fillna(0).astype("int64")
    )
    return Resolved(
        records=records[["record", "oneid", "customer_id", "identity_id", "new"]],
        customers_created=created_customers,
        identities_created=created_identities,
        merges=merges,
    )


def _merge(
    brand: Brand, kept_id: int, merged_id: int, *, rule: str, job=None, reason: str = ""
) -> MergeRecord:
    """Move everything of one person to another and record why."""
    kept = Customer.objects.select_for_update().get(pk=kept_id)
    merged = Customer.objects.select_for_update().get(pk=merged_id)
    moved = list(Identity.objects.filter(customer=merged).values_list("pk", flat=True))
    Identity.objects.filter(customer=merged).update(customer=kept)
    events = Event.objects.filter(customer=merged).update(customer=kept)
    orders = Order.objects.filter(customer=merged).update(customer=kept)
    before = dict(kept.attributes or {})
    text = reason or _("Linked by the OneID rule “%(rule)s”.") % {"rule": rule}
    record = MergeRecord.objects.create(
        brand=brand,
        kept=kept,
        merged=merged,
        kept_oneid=kept.oneid,
        merged_oneid=merged.oneid,
        rule=rule,
        reason=text,
        identities_moved=moved,
        events_moved=events,
        orders_moved=orders,
        kept_attributes_before=before,
        import_job=job,
    )
    kept.attributes = {**(merged.attributes or {}), **before}
    kept._change_reason = _("Merged OneID %(oneid)s into this person.") % {"oneid": merged.oneid}
    kept.save(update_fields=["attributes", "last_updated"])
    merged.merged_into = kept
    merged._change_reason = _("Merged into OneID %(oneid)s.") % {"oneid": kept.oneid}
    merged.save(update_fields=["merged_into", "last_updated"])
    return record


def split(merge: MergeRecord, *, user=None, reason: str = "") -> MergeRecord:
    """Undo a merge: the merged person gets back the identities that moved, with the
    events and orders that arrived with them, and the kept person its attributes."""
    with transaction.atomic():
        merge = MergeRecord.objects.select_for_update().get(pk=merge.pk)
        if merge.undone_at is not None:
            raise ValidationError(_("This merge was already split."))
        kept = Customer.objects.select_for_update().get(pk=merge.kept_id)
        merged = Customer.objects.select_for_update().get(pk=merge.merged_id)
        if kept.merged_into_id is not None:
            raise ValidationError(
                _("OneID %(oneid)s was merged into another person since; split that merge first.")
                % {"oneid": kept.oneid}
            )
        if merged.merged_into_id != kept.pk:
            raise ValidationError(_("OneID %(oneid)s is no longer merged here.") % {"oneid": merged.oneid})
        moved = list(
            Identity.objects.filter(pk__in=merge.identities_moved, customer=kept).values_list("pk", flat=True)
        )
        Event.objects.filter(customer=kept, identity_id__in=moved).update(customer=merged)
        Order.objects.filter(customer=kept, identity_id__in=moved).update(customer=merged)
        Identity.objects.filter(pk__in=moved).update(customer=merged)
        kept.attributes = dict(merge.kept_attributes_before or {})
        kept._change_reason = _("Split OneID %(oneid)s off again.") % {"oneid": merged.oneid}
        kept.save(update_fields=["attributes", "last_updated"])
        merged.merged_into = None
        merged._change_reason = _("Split off OneID %(oneid)s again.") % {"oneid": kept.oneid}
        merged.save(update_fields=["merged_into", "last_updated"])
        merge.undone_at = timezone.now()
        merge.undone_by = user if user is not None and user.is_authenticated else None
        merge.undo_reason = reason
        merge._change_reason = reason or _("Split")
        merge.save(update_fields=["undone_at", "undone_by", "undo_reason", "last_updated"])
    return merge


def lookup_customer(queryset, type_: str, value: str, app: str = "") -> Customer | None:
    """The person holding an identity, by its keyed hash (``queryset``: the customers
    the caller may see, of one brand or several)."""
    if type_ not in IdentityType.values:
        raise ValidationError({"type": _("Unknown identity type.")})
    normalised, problem = pii.normalise_one(type_, value)
    if problem or not normalised:
        raise ValidationError({"value": problem or _("Required.")})
    identity = (
        Identity.objects.filter(
            type=type_, app=app or "", value_hash=pii.hash_value(type_, normalised), customer__in=queryset
        )
        .select_related("customer")
        .first()
    )
    return identity.customer if identity else None


# ---------------------------------------------------------------------------
# Imports


@dataclass
class ImportReport:
    kind: str
    rows_total: int = 0
    rows_ok: int = 0
    rows_skipped: int = 0
    rows_bad: int = 0
    errors: list[dict] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and not self.message


class ProgressWriter:
    """Keeps ``ImportJob.progress`` current while an import runs. Inside the import's
    transaction the row is written over a second connection on PostgreSQL, so the
    admin shows progress before the import commits."""

    def __init__(self, job: ImportJob | None, callback: Progress | None = None):
        self.job = job
        self.callback = callback or _nothing
        self.percent = -1
        self.stage = ""
        self.side = None

    def __call__(self, done: int, total: int, stage: str) -> None:
        self.callback(done, total, stage)
        if self.job is None:
            return
        weights = {"reading": (0, 5), "checking": (5, 15), "linking": (15, 30), "writing": (30, 100)}
        low, high = weights.get(stage, (0, 100))
        percent = int(low + (high - low) * (done / total if total else 1))
        if percent == self.percent and stage == self.stage:
            return
        self.percent, self.stage = percent, stage
        self._write(percent, stage)

    def _write(self, percent: int, stage: str) -> None:
        if connection.in_atomic_block and connection.vendor == "postgresql":
            if self.side is None:
                self.side = connections.create_connection(DEFAULT_DB_ALIAS)
            table = self.side.ops.quote_name(ImportJob._meta.db_table)
            with self.side.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET progress = %s, stage = %s WHERE id = %s",
                    [percent, stage, self.job.pk],
                )
        else:
            ImportJob.objects.filter(pk=self.job.pk).update(progress=percent, stage=stage)

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
            self.side = None


def _existing_client_ids(model, brand: Brand, client_ids: list[str]) -> set[str]:
    found: set[str] = set()
    for chunk in _chunks(sorted(set(client_ids))):
        found.update(
            model.objects.filter(brand=brand, client_id__in=chunk).values_list("client_id", flat=True)
        )
    return found


def import_frame(
    brand: Brand,
    kind: str,
    frame: pd.DataFrame,
    *,
    job: ImportJob | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``frame`` (see :mod:`.importers` for the columns) into ``brand``.

    All or nothing: when a row is bad, the report lists the bad rows and nothing is
    written. Rows whose ``client_id`` was imported before are skipped, so sending a
    file again adds nothing. An identity nobody holds yet creates a person.
    """
    progress = progress or _nothing
    report = ImportReport(kind=kind, rows_total=len(frame))
    progress(0, len(frame), "checking")
    prepared = importers.prepare(kind, frame)
    progress(len(frame), len(frame), "checking")
    if not prepared.ok:
        report.errors = prepared.errors
        report.rows_bad = prepared.rows_bad or len(frame)
        return report
    data, links = prepared.data, prepared.links
    keep = np.ones(len(data), dtype=bool)
    if kind in (ImportKind.EVENTS, ImportKind.ORDERS):
        model = Event if kind == ImportKind.EVENTS else Order
        seen = _existing_client_ids(model, brand, data["client_id"].tolist())
        keep = ~data["client_id"].isin(seen).to_numpy(dtype=bool)
        report.rows_skipped = int((~keep).sum())
    with transaction.atomic():
        progress(0, 1, "linking")
        kept_links = links[keep[links["pos"].to_numpy()]] if len(links) else links
        resolved = resolve_identities(brand, kept_links.rename(columns={"pos": "record"}), job=job)
        progress(1, 1, "linking")
        per_row = resolved.records.set_index("record")
        rows = data[keep].join(per_row, how="left")
        report.created = {
            "customers": resolved.customers_created,
            "identities": resolved.identities_created,
            "merges": len(resolved.merges),
        }
        if kind == ImportKind.EVENTS:
            report.created["events"] = write_events(brand, rows, progress=progress)
            report.rows_ok = len(rows)
        elif kind == ImportKind.ORDERS:
            report.created["orders"] = write_orders(brand, rows, progress=progress)
            report.rows_ok = len(rows)
        else:
            touched = rows["new"].to_numpy() > 0
            if kind == ImportKind.CUSTOMERS:
                changed = set_attributes(brand, rows, progress=progress)
                touched |= rows["customer_id"].isin(changed).to_numpy(dtype=bool)
            merged = {m.kept_id for m in resolved.merges}
            touched |= rows["customer_id"].isin(merged).to_numpy(dtype=bool)
            progress(len(rows), len(rows), "writing")
            report.rows_ok = int(touched.sum())
            report.rows_skipped = len(rows) - report.rows_ok
    return report


def _datetimes(times: pd.Series) -> list:
    return list(pd.DatetimeIndex(times).tz_convert("UTC").to_pydatetime())


def _decimal(x: float) -> Decimal:
    return Decimal(f"{x:.2f}")


def _text(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    return str(value)


def write_events(brand: Brand, rows: pd.DataFrame, *, progress: Progress | None = None) -> int:
    """Write events (``customer_id``, ``identity_id``, ``client_id``, ``time``, ``type``,
    ``channel``, ``store``, ``value``, ``properties``) in batches."""
    progress = progress or _nothing
    total = len(rows)
    for start in range(0, total, CHUNK):
        part = rows.iloc[start : start + CHUNK]
        identities = (
            part["identity_id"].astype("Int64").tolist() if "identity_id" in part else [None] * len(part)
        )
        values = part["value"].tolist() if "value" in part else [None] * len(part)
        objects = [
            Event(
                brand_id=brand.pk,
                customer_id=int(customer),
                identity_id=None if identity is pd.NA or identity is None else int(identity),
                client_id=client_id,
                type=type_,
                channel=_text(channel),
                store=_text(store),
                value=None if value is None or value != value else float(value),
                time=moment,
                properties=properties or {},
            )
            for customer, identity, client_id, type_, channel, store, value, moment, properties in zip(
                part["customer_id"],
                identities,
                part["client_id"],
                part["type"],
                part.get("channel", pd.Series("", index=part.index)),
                part.get("store", pd.Series("", index=part.index)),
                values,
                _datetimes(part["time"]),
                part.get("properties", pd.Series([{}] * len(part), index=part.index)),
                strict=True,
            )
        ]
        Event.objects.bulk_create(objects, batch_size=BATCH)
        progress(min(start + CHUNK, total), total, "writing")
    return total


def write_orders(brand: Brand, rows: pd.DataFrame, *, progress: Progress | None = None) -> int:
    """Write orders (``customer_id``, ``identity_id``, ``client_id``, ``time``, ``amount``,
    ``quantity``, ``channel``, ``store``, ``category``, ``sku``, ``discount``, ``items``,
    ``properties``) in batches."""
    progress = progress or _nothing
    total = len(rows)
    blank = pd.Series("", index=rows.index)
    for start in range(0, total, CHUNK):
        part = rows.iloc[start : start + CHUNK]
        identities = (
            part["identity_id"].astype("Int64").tolist() if "identity_id" in part else [None] * len(part)
        )
        n = len(part)
        objects = [
            Order(
                brand_id=brand.pk,
                customer_id=int(customer),
                identity_id=None if identity is pd.NA or identity is None else int(identity),
                client_id=client_id,
                time=moment,
                amount=_decimal(amount),
                quantity=int(quantity),
                channel=_text(channel),
                store=_text(store),
                category=_text(category),
                sku=_text(sku),
                discount=_decimal(discount),
                items=items or [],
                properties=properties or {},
            )
            for (
                customer, identity, client_id, moment, amount, quantity, channel, store, category, sku, discount,
                items, properties,
            ) in zip(
                part["customer_id"],
                identities,
                part["client_id"],
                _datetimes(part["time"]),
                part["amount"],
                part.get("quantity", pd.Series(1, index=part.index)),
                part.get("channel", blank[part.index]),
                part.get("store", blank[part.index]),
                part.get("category", blank[part.index]),
                part.get("sku", blank[part.index]),
                part.get("discount", pd.Series(0.0, index=part.index)),
                part.get("items", pd.Series([[]] * n, index=part.index)),
                part.get("properties", pd.Series([{}] * n, index=part.index)),
                strict=True,
            )
        ]  # fmt: skip
        Order.objects.bulk_create(objects, batch_size=BATCH)
        progress(min(start + CHUNK, total), total, "writing")
    return total


def set_attributes(brand: Brand, rows: pd.DataFrame, *, progress: Progress | None = None) -> set[int]:
    """Set profile attributes (``customer_id``, ``attributes``; later rows win); answers
    the ids of the customers that changed."""
    progress = progress or _nothing
    wanted: dict[int, dict] = {}
    for customer, attributes in zip(rows["customer_id"], rows["attributes"], strict=True):
        if attributes:
            wanted.setdefault(int(customer), {}).update(attributes)
    changed = []
    ids = sorted(wanted)
    now = timezone.now()
    for chunk in _chunks(ids, BATCH):
        for customer in Customer.objects.filter(brand=brand, pk__in=chunk):
            merged = {**(customer.attributes or {}), **wanted[customer.pk]}
            if merged != customer.attributes:
                customer.attributes = merged
                customer.last_updated = now
                changed.append(customer)
    for start in range(0, len(changed), BATCH):
        Customer.objects.bulk_update(changed[start : start + BATCH], ["attributes", "last_updated"])
        progress(min(start + BATCH, len(changed)), len(changed), "writing")
    progress(len(rows), len(rows), "writing")
    return {c.pk for c in changed}


def check_may_import(user, brand: Brand) -> None:
    if user is not None and not may_add_into(user, ImportJob, brand):
        raise PermissionDenied(_("You may not import data into the brand “%(brand)s”.") % {"brand": brand})


def create_job(
    brand: Brand, kind: str, *, file_name: str = "", user=None, upload=None, job: ImportJob | None = None
) -> ImportJob:
    """A pending import job (``job``: an unsaved instance to fill, e.g. the admin's)."""
    if kind not in ImportKind.values:
        raise ValidationError({"kind": _("Unknown import kind.")})
    check_may_import(user, brand)
    job = job if job is not None else ImportJob()
    job.brand = brand
    job.kind = kind
    job.file_name = (file_name or "")[:255]
    job.status = ImportStatus.PENDING
    job.created_by = user if user is not None and user.is_authenticated else None
    if upload is not None:
        job.upload = upload
    job._change_reason = _("Import queued")
    job.save()
    return job


def run_job(job: ImportJob, source, *, progress: Progress | None = None) -> ImportJob:
    """Run an import job on ``source`` (a path, a binary file object or a DataFrame) and
    store its report on the job."""
    writer = ProgressWriter(job, progress)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.RUNNING, started_at=timezone.now(), progress=0, stage="reading"
    )
    started = _time.perf_counter()
    try:
        writer(0, 1, "reading")
        frame = source if isinstance(source, pd.DataFrame) else importers.read_table(source, job.file_name)
        writer(1, 1, "reading")
        report = import_frame(job.brand, job.kind, frame, job=job, progress=writer)
    except importers.ImportFileError as exc:
        report = ImportReport(
            kind=job.kind, errors=[{"row": exc.row, "column": "", "message": str(exc)}], message=str(exc)
        )
    except ValidationError as exc:
        report = ImportReport(kind=job.kind, message="; ".join(exc.messages))
    except Exception as exc:
        log.exception("import job %s failed", job.pk)
        report = ImportReport(kind=job.kind, message=_("The import failed: %(error)s") % {"error": exc})
    finally:
        writer.close()
    job.refresh_from_db()
    job.status = ImportStatus.SUCCEEDED if report.ok else ImportStatus.FAILED
    job.rows_total = report.rows_total
    job.rows_ok = report.rows_ok if report.ok else 0
    job.rows_skipped = report.rows_skipped if report.ok else 0
    job.rows_bad = min(report.rows_bad, report.rows_total)
    job.errors = report.errors
    job.created_counts = report.created if report.ok else {}
    job.message = report.message
    job.progress = 100 if report.ok else job.progress
    job.stage = "done" if report.ok else "failed"
    job.finished_at = timezone.now()
    job._change_reason = _("Import finished in %(seconds).1f s") % {"seconds": _time.perf_counter() - started}
    job.save()
    return job


def import_file(
    brand: Brand,
    kind: str,
    source,
    *,
    file_name: str = "",
    user=None,
    progress: Progress | None = None,
) -> ImportJob:
    """Import a CSV or Parquet file now; answers the finished job with its report."""
    if not file_name:
        file_name = (
            Path(str(source)).name if isinstance(source, str | Path) else getattr(source, "name", "") or ""
        )
    job = create_job(brand, kind, file_name=file_name, user=user)
    return run_job(job, source, progress=progress)


def queue_import(brand: Brand, kind: str, upload, *, user=None, job: ImportJob | None = None) -> ImportJob:
    """Store an uploaded file and run its import in the background (a Celery task;
    in-process when no broker is configured). The file is deleted once imported."""
    job = create_job(brand, kind, file_name=getattr(upload, "name", ""), user=user, upload=upload, job=job)
    from .tasks import run_import_job

    transaction.on_commit(lambda: run_import_job.delay(job.pk))
    return job


def run_stored_job(job_id: int) -> ImportJob | None:
    """Run a queued job from its stored upload, then delete the upload."""
    job = ImportJob.objects.select_related("brand").filter(pk=job_id).first()
    if job is None or job.status != ImportStatus.PENDING:
        return job  # gone, or already run (a task delivered twice)
    try:
        if not job.upload:
            raise importers.ImportFileError(_("The uploaded file is missing."))
        with job.upload.open("rb") as handle:
            job = run_job(job, handle)
    except importers.ImportFileError as exc:
        ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.FAILED, message=str(exc))
    finally:
        if job.upload:
            job.upload.delete(save=False)
            ImportJob.objects.filter(pk=job.pk).update(upload="")
    job.refresh_from_db()
    return job


# ---------------------------------------------------------------------------
# Demo data


def load_demo(
    brand: Brand,
    people: int = 2000,
    seed: int = 1,
    *,
    events_per_person: float = 10,
    industry: str | None = None,
    channels=None,
    end=None,
    progress: Progress | None = None,
) -> dict[str, int]:
    """Generate demo people, events and orders (see :mod:`.generator`) and write them
    into ``brand``. Running it again with the same arguments adds nothing."""
    from . import generator

    progress = progress or _nothing
    industry = industry or generator.industry_for_brand(brand.code)
    channels = list(channels) if channels else list(generator.CHANNELS)
    frames = generator.generate(seed, people, events_per_person, channels, industry=industry, end=end)
    prefix = f"demo-{industry}-s{seed}-n{people}-e{events_per_person:g}"
    if set(channels) != set(generator.CHANNELS):
        prefix += f"-c{zlib.crc32(','.join(sorted(channels)).encode()):x}"
    identities = frames["identities"]
    with transaction.atomic():
        resolved = resolve_identities(
            brand,
            identities.rename(columns={"oneid": "record"}),
            reason=_("Demo data"),
        )
        person = resolved.records.set_index("record")
        customers = frames["customers"].set_index("oneid")
        attributes = customers.astype(object).where(customers.notna(), None)
        rows = pd.DataFrame(
            {
                "customer_id": person.loc[customers.index, "customer_id"].to_numpy(),
                "attributes": [
                    {k: _json_value(v) for k, v in rec.items() if v is not None}
                    for rec in attributes.to_dict("records")
                ],
            }
        )
        new_people = set(person.loc[person["new"] > 0, "customer_id"])
        set_attributes(brand, rows[rows["customer_id"].isin(new_people)])
        counts = {
            "customers": resolved.customers_created,
            "identities": resolved.identities_created,
            "events": 0,
            "orders": 0,
        }
        for kind, frame in (("events", frames["events"]), ("orders", frames["orders"])):
            model = Event if kind == "events" else Order
            frame = frame.copy()
            frame["client_id"] = [f"{prefix}-{kind[0]}{i}" for i in range(len(frame))]
            seen = _existing_client_ids(model, brand, frame["client_id"].tolist())
            frame = frame[~frame["client_id"].isin(seen)]
            if not len(frame):
                continue
            frame["customer_id"] = person.loc[frame["oneid"], "customer_id"].to_numpy()
            frame["identity_id"] = person.loc[frame["oneid"], "identity_id"].to_numpy()
            frame["properties"] = generator.properties_dicts(frame)
            if kind == "events":
                counts["events"] = write_events(brand, frame, progress=progress)
            else:
                frame["items"] = [
                    [{"sku": sku, "quantity": int(q), "amount": f"{a:.2f}"}]
                    for sku, q, a in zip(frame["sku"], frame["quantity"], frame["amount"], strict=True)
                ]
                counts["orders"] = write_orders(brand, frame, progress=progress)
    return counts


def _json_value(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
