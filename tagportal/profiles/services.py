"""State changes of people: OneID resolution and merges, splits, and the bulk writes
of events, orders and profile attributes.

:mod:`.oneid` decides who is one person (pandas, no ORM); this module applies it to
the database and records the merges. Imports (:mod:`.imports`), demo data
(:func:`.generator.load_demo`), the realtime intake of the engine, views, admin
actions and the API write through these. Other apps find a person with
:func:`lookup_customer` (many at once: :func:`live_oneids`, :func:`identity_oneids`) and
read profiles through :mod:`.loaders`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pandas as pd
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog.models import Brand

from . import oneid, pii
from .choices import IdentityType
from .models import Customer, Event, Identity, IdentityLink, ImportJob, MergeRecord, Order

#: Rows written per ``bulk_create`` call, and between two progress reports.
BATCH = 2000
CHUNK = 10_000
#: Values per ``IN (...)`` lookup.
LOOKUP_CHUNK = 900

#: ``progress(done, total, stage)``
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, stage: str) -> None:
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
    into people of ``brand``. The records are kept as :class:`IdentityLink` pairs and
    the region they touch (everything connected to their identities by a stored pair or
    a person) is resolved again from its pairs and the new records, so the people are
    those of all records resolved at once, whatever the imports were. People found to
    be one are merged (a :class:`MergeRecord` with the rule that joined them); a merge
    the rules no longer make is marked split and its person keeps its OneID again;
    identities the rules move are noted in the giving person's history.

    Atomic; it locks the brand's OneID sequence until the surrounding transaction ends.
    """
    with transaction.atomic():
        return _resolve_identities(brand, links, rules=rules or oneid_rules(), job=job, reason=reason)


def lock_brand(brand: Brand) -> None:
    """Hold the brand's row (its OneID sequence, its imports) until the transaction ends."""
    Brand.objects.select_for_update().filter(pk=brand.pk).first()


def _region(brand: Brand, identity_ids: Iterable[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The identities and stored links OneID must decide again when records name
    ``identity_ids``: everything connected to them by a stored link or by being one
    person now (nothing outside it can change). ``identity_id``, ``type``, ``app``,
    ``hash``, ``customer_id``, ``oneid``; and ``a``, ``b`` (identity ids)."""
    seen: set[int] = set()
    customers: set[int] = set()
    pairs: dict[int, tuple[int, int]] = {}
    frontier = set(identity_ids)
    while frontier:
        seen |= frontier
        found: set[int] = set()
        for chunk in _chunks(sorted(frontier)):
            for pk, a, b in IdentityLink.objects.filter(Q(a_id__in=chunk) | Q(b_id__in=chunk)).values_list(
                "pk", "a_id", "b_id"
            ):
                pairs[pk] = (a, b)
                found.update((a, b))
            owners = set(Identity.objects.filter(pk__in=chunk).values_list("customer_id", flat=True))
            fresh = sorted(owners - customers)
            customers |= owners
            for group in _chunks(fresh):
                found.update(Identity.objects.filter(customer_id__in=group).values_list("pk", flat=True))
        frontier = found - seen
    rows = []
    for chunk in _chunks(sorted(seen)):
        rows.extend(
            Identity.objects.filter(brand=brand, pk__in=chunk).values_list(
                "pk", "type", "app", "value_hash", "customer_id", "customer__oneid"
            )
        )
    identities = pd.DataFrame(rows, columns=["identity_id", "type", "app", "hash", "customer_id", "oneid"])
    links = pd.DataFrame(list(pairs.values()), columns=["a", "b"], dtype="int64")
    return identities, links


def _origins(region: pd.DataFrame) -> tuple[pd.Series, dict[int, MergeRecord]]:
    """Each identity's OneID before the merges still in force (the person it came with),
    and those merges by merged customer (through chains of merges)."""
    tree: dict[int, MergeRecord] = {}
    frontier = set(region["customer_id"].tolist())
    while frontier:
        found = {}
        for chunk in _chunks(sorted(frontier)):
            for merge in MergeRecord.objects.filter(kept_id__in=chunk, undone_at__isnull=True):
                found[merge.merged_id] = merge
        tree.update(found)
        frontier = set(found) - frontier
    origin = region["oneid"].copy()
    if not tree:
        return origin, tree

    def root(customer: int) -> int:
        while customer in tree:
            customer = tree[customer].kept_id
        return customer

    where = dict(zip(region["identity_id"].tolist(), region.index, strict=True))
    done = set()
    for merge in sorted(tree.values(), key=lambda m: m.pk):
        holder = root(merge.kept_id)
        for identity in merge.identities_moved:
            row = where.get(identity)
            if row is not None and identity not in done and region.at[row, "customer_id"] == holder:
                origin.at[row] = merge.merged_oneid
                done.add(identity)
    return origin, tree


def _resolve_identities(brand: Brand, links: pd.DataFrame, *, rules, job, reason: str) -> Resolved:
    lock_brand(brand)
    if len(links) == 0:
        empty = pd.DataFrame(
            {"record": [], "oneid": [], "customer_id": [], "identity_id": [], "new": []}, dtype="int64"
        )
        return Resolved(records=empty)
    hashed = _hashed_links(links)
    record_codes, record_values = pd.factorize(hashed["record"], sort=False)
    hashed["code"] = record_codes.astype("int64")
    known = _existing_identities(brand, hashed["hash"].tolist())
    known = known.merge(hashed[["type", "app", "hash"]].drop_duplicates(), on=["type", "app", "hash"])
    region, stored = _region(brand, known["identity_id"].tolist())
    origin, tree = _origins(region)

    # the stored links of the region as records, after the new ones
    by_id = region.set_index("identity_id")
    pair_code = len(record_values) + np.arange(len(stored), dtype="int64")
    two = (stored["a"] != stored["b"]).to_numpy(dtype=bool)
    ends = pd.DataFrame(
        {
            "code": np.concatenate([pair_code, pair_code[two]]),
            "identity_id": np.concatenate([stored["a"].to_numpy(), stored["b"].to_numpy()[two]]),
        }
    )
    ends = ends.join(by_id[["type", "app", "hash"]], on="identity_id")
    every = pd.concat(
        [hashed[["code", "type", "app", "hash"]], ends[["code", "type", "app", "hash"]]], ignore_index=True
    )
    first_new = next_oneid(brand)
    resolution = oneid.resolve(
        every.rename(columns={"code": "record", "hash": "value"}),
        region.assign(oneid=origin).rename(columns={"hash": "value"})[["type", "app", "value", "oneid"]],
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
    ) | dict(zip(region["oneid"].tolist(), region["customer_id"].tolist(), strict=True))
    customer_of |= {merge.merged_oneid: merged for merged, merge in tree.items()}
    merges = _apply(brand, resolution, region, customer_of, tree, job=job, reason=reason)

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
    _store_links(brand, per_link, rules)
    real = resolution.records[resolution.records["record"] < len(record_values)]
    real = pd.DataFrame(
        {"record": record_values[real["record"].to_numpy()], "oneid": real["oneid"].to_numpy()}
    )
    per_link = per_link.merge(real.rename(columns={"oneid": "record_oneid"}), on="record")
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
    records = real.merge(primary[["record", "identity_id"]], on="record", how="left")
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


def _store_links(brand: Brand, per_link: pd.DataFrame, rules) -> None:
    """Keep each record's identities as pairs (see :class:`IdentityLink`)."""
    guarded = {t for rule in rules if rule.never_merges for t in rule.types}
    frame = per_link[["code", "type", "identity_id"]].drop_duplicates(["code", "identity_id"])
    frame = frame.assign(guarded=frame["type"].isin(guarded)).sort_values(["code", "guarded"], kind="stable")
    anchor = frame.groupby("code")["identity_id"].transform("first")
    size = frame.groupby("code")["identity_id"].transform("size")
    keep = (frame["identity_id"] != anchor) | (size == 1)
    pairs = set(
        zip(
            anchor[keep].astype("int64").tolist(),
            frame["identity_id"][keep].astype("int64").tolist(),
            strict=True,
        )
    )
    IdentityLink.objects.bulk_create(
        [IdentityLink(brand_id=brand.pk, a_id=a, b_id=b) for a, b in sorted(pairs)],
        batch_size=BATCH,
        ignore_conflicts=True,
    )


def _apply(brand: Brand, resolution, region: pd.DataFrame, customer_of, tree, *, job, reason) -> list:
    """Make the people of ``region`` what ``resolution`` says: undo the merges it no
    longer makes, record the new ones, and move the identities the rules put in another
    person there, with the events and orders that arrived with them."""
    undo_reason = reason or _("The OneID rules no longer join these people.")
    absorbed = {int(m): (int(k), rule) for k, m, rule in resolution.merges.itertuples(index=False)}
    kept = set(resolution.identities["oneid"].tolist())
    # where each person ends: itself, or the person it is merged into
    final = {oneid_: oneid_ for oneid_ in kept} | {m: k for m, (k, _rule) in absorbed.items()}
    for customer, merge in list(tree.items()):
        if merge.merged_oneid not in final:
            continue  # none of its identities is in play
        # a merge in force stays when the person it went into ends where this one does
        if final.get(merge.kept_oneid, merge.kept_oneid) != final[merge.merged_oneid]:
            _undo(merge, undo_reason)
            del tree[customer]
    merges = []
    for merged, (into, rule) in sorted(absorbed.items()):
        if customer_of[merged] not in tree:
            merges.append(
                _merge(brand, customer_of[into], customer_of[merged], rule=rule, job=job, reason=reason)
            )
    if len(region) == 0:
        return merges
    table = region[["identity_id", "type", "app", "hash"]].merge(
        resolution.identities.rename(columns={"value": "hash"})[["type", "app", "hash", "oneid"]],
        on=["type", "app", "hash"],
    )
    table["target"] = table["oneid"].map(customer_of)
    now = dict(
        pair
        for chunk in _chunks(table["identity_id"].tolist())
        for pair in Identity.objects.filter(pk__in=chunk).values_list("pk", "customer_id")
    )
    table["current"] = table["identity_id"].map(now)
    moving = table[table["current"] != table["target"]]
    for (source, target), group in moving.groupby(["current", "target"]):
        moved = group["identity_id"].tolist()
        Identity.objects.filter(pk__in=moved).update(customer_id=target)
        Event.objects.filter(customer_id=source, identity_id__in=moved).update(customer_id=target)
        Order.objects.filter(customer_id=source, identity_id__in=moved).update(customer_id=target)
        giver = Customer.objects.get(pk=source)
        giver._change_reason = _("The OneID rules moved %(count)s identities to OneID %(oneid)s.") % {
            "count": len(moved),
            "oneid": Customer.objects.get(pk=target).oneid,
        }
        giver.save(update_fields=["last_updated"])
    return merges


def _undo(merge: MergeRecord, reason: str) -> None:
    """Mark a merge the rules no longer make as split; its identities move in :func:`_apply`."""
    merged = Customer.objects.select_for_update().get(pk=merge.merged_id)
    merged.merged_into = None
    merged._change_reason = _("Split off OneID %(oneid)s again.") % {"oneid": merge.kept_oneid}
    merged.save(update_fields=["merged_into", "last_updated"])
    merge.undone_at = timezone.now()
    merge.undo_reason = reason
    merge._change_reason = reason
    merge.save(update_fields=["undone_at", "undo_reason", "last_updated"])


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
        # the records that joined them no longer count (until a new one joins them again)
        staying = list(Identity.objects.filter(customer=kept).values_list("pk", flat=True))
        IdentityLink.objects.filter(
            Q(a_id__in=moved, b_id__in=staying) | Q(a_id__in=staying, b_id__in=moved)
        ).delete()
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


#: Merges followed from a OneID to the person it now belongs to.
MAX_MERGE_HOPS = 20


def live_oneids(brand: Brand, oneids: Iterable[int]) -> dict[int, int]:
    """``{oneid: the OneID of the person it is now}`` for the OneIDs of ``brand`` among
    ``oneids``: a OneID merged into another person answers the person it was merged into
    (following later merges); OneIDs the brand does not know are left out."""
    asked = {int(o) for o in oneids}
    target: dict[int, int | None] = {}
    wanted = sorted(asked)
    for _hop in range(MAX_MERGE_HOPS):
        if not wanted:
            break
        for chunk in _chunks(wanted):
            target.update(
                Customer.objects.filter(brand=brand, oneid__in=chunk).values_list(
                    "oneid", "merged_into__oneid"
                )
            )
        wanted = sorted({t for t in target.values() if t is not None and t not in target})
    live: dict[int, int] = {}
    for oneid_ in asked:
        current, hops = oneid_, 0
        while current in target and target[current] is not None and hops < MAX_MERGE_HOPS:
            current, hops = target[current], hops + 1
        if current in target and target[current] is None:
            live[oneid_] = current
    return live


def identity_oneids(brand: Brand, type_: str, app: str, values: Iterable[str]) -> dict[str, int]:
    """``{normalised value: live OneID}`` of the ``values`` (normalised already, see
    :func:`.pii.normalise`) of one identity type (and app, for per-app types) held by a
    person of ``brand``, compared by their keyed hash; values nobody holds are left out.

    This answers *who holds these values*: callers gate it as an identity lookup
    (:mod:`.lookups`: permission, throttle, audit row)."""
    distinct = sorted({v for v in values if v})
    if not distinct:
        return {}
    hashes = dict(zip(pii.hash_values(type_, distinct), distinct, strict=True))
    found: dict[str, int] = {}
    for chunk in _chunks(sorted(hashes)):
        rows = Identity.objects.filter(
            brand=brand, type=type_, app=app or "", value_hash__in=chunk
        ).values_list("value_hash", "customer__oneid")
        found.update({hashes[h]: int(o) for h, o in rows})
    live = live_oneids(brand, found.values())
    return {value: live[o] for value, o in found.items() if o in live}


# ---------------------------------------------------------------------------
# Events, orders and attributes


def existing_client_ids(model, brand: Brand, client_ids: list[str]) -> set[str]:
    """The ``client_ids`` already written for ``model`` (events or orders) of ``brand``."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(client_ids))):
        found.update(
            model.objects.filter(brand=brand, client_id__in=chunk).values_list("client_id", flat=True)
        )
    return found


def _insert_new(model, objects: list) -> int:
    """Insert-or-ignore on the brand's ``client_id``: a row whose client id another writer
    stored in the meantime is left out, not an error (imports take the brand's lock and
    skip known client ids first, so this is the last guard)."""
    model.objects.bulk_create(objects, batch_size=BATCH, ignore_conflicts=True)
    return len(objects)


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
    progress = progress or no_progress
    total = len(rows)
    written = 0
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
        written += _insert_new(Event, objects)
        progress(min(start + CHUNK, total), total, "writing")
    return written


def write_orders(brand: Brand, rows: pd.DataFrame, *, progress: Progress | None = None) -> int:
    """Write orders (``customer_id``, ``identity_id``, ``client_id``, ``time``, ``amount``,
    ``quantity``, ``channel``, ``store``, ``category``, ``sku``, ``discount``, ``items``,
    ``properties``) in batches."""
    progress = progress or no_progress
    total = len(rows)
    written = 0
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
        written += _insert_new(Order, objects)
        progress(min(start + CHUNK, total), total, "writing")
    return written


def set_attributes(brand: Brand, rows: pd.DataFrame, *, progress: Progress | None = None) -> set[int]:
    """Set profile attributes (``customer_id``, ``attributes``; later rows win); answers
    the ids of the customers that changed."""
    progress = progress or no_progress
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
