"""Moving people through journeys: claim the due instances, advance them node by node.

:func:`tick` claims at most ``limit`` due instances (``active``/``waiting``, due,
lease free, journey live) — ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
concurrent workers never take the same row; SQLite's transactions serialise claimers —
and puts a lease on them. :func:`advance` then moves them, in one transaction, as far
as they can go now: each node type handles all the claimed people at that node at once
(one query per node and tick, one :class:`~tagportal.activation.models.Send` per send
node, variant and tick with a delivery per person), and writes one
:class:`~.models.InstanceStep` per (instance, node) passed.

Idempotency: a step is unique per (instance, node). A person whose step at a node is
already recorded follows the recorded way out without doing the node's work again; a
second worker holding the same people (a lease that ran out) fails on the unique step
and its whole transaction — sends included — rolls back. Nobody moves twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from tagportal.core.leases import claim_pks, pk_in

from . import services, variants
from .choices import (
    EVENT_ENTERED,
    EVENT_EXITED,
    OPEN_STATES,
    HoldoutGroup,
    InstanceState,
    JourneyStatus,
    NodeType,
    StepOutcome,
)
from .graph import ORDER, Graph
from .models import InstanceStep, Journey, JourneyInstance, JourneyVersion

log = logging.getLogger(__name__)

#: Instances updated per statement.
SAVE_CHUNK = 5000
#: Steps inserted per statement.
STEP_CHUNK = 20000
#: Nodes one person may pass in one tick (graphs have no loops; a bound anyway).
MAX_HOPS = 100


def _lease_seconds() -> int:
    return int(getattr(settings, "TAGPORTAL_JOURNEY_LEASE_SECONDS", 300))


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _pk_in(pks: list[int]) -> Q:
    return pk_in(pks, JourneyInstance.objects.db)


# claiming ------------------------------------------------------------------------
def claim(now: dt.datetime, limit: int) -> tuple[list[int], dt.datetime]:
    """The pks of at most ``limit`` due instances, now leased until the answered time."""
    lease = now + dt.timedelta(seconds=_lease_seconds())
    due = (
        JourneyInstance.objects.filter(
            state__in=OPEN_STATES, next_run_at__lte=now, journey__status=JourneyStatus.LIVE
        )
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        # no ORDER BY: every due row is due; sorting them all would cost more than the batch
        .order_by()
    )
    pks = claim_pks(due, limit, lease_until=lease)
    return pks, lease


def tick(now: dt.datetime | None = None, limit: int = 500) -> int:
    """Claim and advance one batch of due instances; answers how many were advanced."""
    now = now or timezone.now()
    pks, lease = claim(now, limit)
    if not pks:
        return 0
    try:
        return advance(pks, lease, now)
    except IntegrityError:
        # another worker recorded a step of these people first (our lease had run out):
        # nothing of ours is kept; they are looked at again once the lease ends
        log.warning("journey instances %s… were advanced elsewhere; batch rolled back", pks[:5])
        return 0
    except OperationalError:
        # the database failed us mid-batch (everything of the batch rolled back): give the
        # people back at once rather than when the lease ends, then let the task retry
        _release(pks, lease)
        raise


def _release(pks: list[int], lease: dt.datetime) -> None:
    """Lift our lease from those of ``pks`` still under it (best effort)."""
    try:
        JourneyInstance.objects.filter(_pk_in(pks), lease_until=lease).update(lease_until=None)
    except OperationalError:
        log.warning("journey instances %s… keep their lease until it ends", pks[:5])


def run_due(now: dt.datetime | None = None, limit: int = 500, batches: int = 20) -> int:
    """Ticks until nothing is due or ``batches`` ran (the periodic task)."""
    total = 0
    for _ in range(batches):
        moved = tick(now, limit)
        total += moved
        if moved < limit:
            break
    return total


# advancing -----------------------------------------------------------------------
@dataclass
class Move:
    """What a node did with one person."""

    port: str | None = None  # the way out taken (None: they stay at the node)
    outcome: str = ""
    detail: dict = field(default_factory=dict)
    wait_until: dt.datetime | None = None  # stay, looked at again then
    end: str | None = None  # leave the journey in this state


@dataclass
class Context:
    now: dt.datetime
    journeys: dict[int, Journey]
    versions: dict[int, JourneyVersion]
    graphs: dict[int, Graph]
    #: ``(instance_id, node, outcome, detail, at)`` of the steps passed
    steps: list[tuple] = field(default_factory=list)
    feedback: dict[int, list] = field(default_factory=lambda: defaultdict(list))
    sends: list[int] = field(default_factory=list)
    policies: dict = field(default_factory=dict)

    def policy(self, brand_id: int):
        if brand_id not in self.policies:
            self.policies[brand_id] = services.policy_for(brand_id)
        return self.policies[brand_id]


def advance(pks: list[int], lease: dt.datetime, now: dt.datetime) -> int:
    """Advance the instances claimed under ``lease``; answers how many were looked at."""
    with transaction.atomic():
        instances = list(
            JourneyInstance.objects.filter(_pk_in(pks), lease_until=lease, state__in=OPEN_STATES).order_by()
        )
        if not instances:
            return 0
        versions = {v.pk: v for v in JourneyVersion.objects.filter(pk__in={i.version_id for i in instances})}
        journeys = {j.pk: j for j in Journey.objects.filter(pk__in={i.journey_id for i in instances})}
        ctx = Context(now, journeys, versions, {pk: Graph(v.graph) for pk, v in versions.items()})
        recorded = _recorded(instances)
        original = {i.pk: _fields(i) for i in instances}
        pending = instances
        for _hop in range(MAX_HOPS):
            if not pending:
                break
            groups: dict[tuple[int, str], list[JourneyInstance]] = defaultdict(list)
            for instance in pending:
                groups[(instance.version_id, instance.node)].append(instance)
            pending = []
            for (version_id, node_id), batch in groups.items():
                pending += _run_node(ctx, version_id, node_id, batch, recorded)
        _insert_steps(ctx.steps)
        _save(instances, original, lease)
        for brand_id, rows in ctx.feedback.items():
            services.write_feedback(brand_id, rows)
        if ctx.sends:
            from tagportal.activation.tasks import deliver_due
            from tagportal.core import background

            background.queue_after_commit(deliver_due)
    return len(instances)


def _recorded(instances: list[JourneyInstance]) -> dict[tuple[int, str], dict]:
    """The steps already recorded ahead of the instances: ``{(instance, node): detail}``.

    A step of a node not passed yet was written after the person arrived where they are
    (by a worker whose lease had run out), so only steps from the earliest ``node_at``
    on (less one lease, for workers whose clocks differ) are read: not the whole history
    of everyone at each tick."""
    pks = [i.pk for i in instances]
    rows = InstanceStep.objects.filter(
        instance_id__in=RawSQL("SELECT unnest(%s::bigint[])", (pks,)) if _postgres() else pks
    )
    arrived = [i.node_at for i in instances]
    if arrived and None not in arrived:
        rows = rows.filter(at__gte=min(arrived) - dt.timedelta(seconds=_lease_seconds()))
    return {
        (pk, node): detail
        for pk, node, detail in rows.order_by().values_list("instance_id", "node", "detail")
    }


def _insert_steps(steps: list[tuple]) -> None:
    """Write the steps ``(instance_id, node, outcome, detail, at)``; on PostgreSQL one
    ``INSERT … SELECT FROM unnest(arrays)`` per chunk (five parameters, not five per
    row). A step already recorded raises :class:`IntegrityError` either way: the batch is
    rolled back."""
    if not _postgres():
        InstanceStep.objects.bulk_create(
            [
                InstanceStep(instance_id=pk, node=node, outcome=outcome, detail=detail, at=at)
                for pk, node, outcome, detail, at in steps
            ],
            batch_size=5000,
        )
        return
    table = InstanceStep._meta.db_table
    sql = (
        f"INSERT INTO {table} (instance_id, node, outcome, detail, at) "
        "SELECT * FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[], %s::jsonb[], %s::timestamptz[])"
    )
    with connection.cursor() as cursor:
        for start in range(0, len(steps), STEP_CHUNK):
            pks, nodes, outcomes, details, ats = zip(*steps[start : start + STEP_CHUNK], strict=True)
            cursor.execute(
                sql,
                [
                    list(pks),
                    list(nodes),
                    list(outcomes),
                    [json.dumps(d or {}, ensure_ascii=False) for d in details],
                    list(ats),
                ],
            )


def _run_node(ctx: Context, version_id: int, node_id: str, batch, recorded) -> list[JourneyInstance]:
    """Run one node for the people at it; answers those that moved on to another node."""
    graph = ctx.graphs[version_id]
    if node_id not in graph.nodes:  # a graph without that node: nothing sensible to do
        moves = {i.pk: Move(end=InstanceState.EXITED, outcome=StepOutcome.FAILED) for i in batch}
        replayed = []
    else:
        replayed = [i for i in batch if (i.pk, node_id) in recorded]
        fresh = [i for i in batch if (i.pk, node_id) not in recorded]
        moves = {}
        for instance in replayed:
            detail = recorded[(instance.pk, node_id)] or {}
            port = detail.get("port")
            moves[instance.pk] = Move(port=port, end=None if port else detail.get("end"))
        if fresh:
            moves.update(HANDLERS[graph.type(node_id)](ctx, graph, node_id, fresh))
    replayed_ids = {i.pk for i in replayed}
    moved = []
    for instance in batch:
        move = moves[instance.pk]
        if instance.pk not in replayed_ids and move.outcome:
            detail = dict(move.detail)
            if move.port:
                detail["port"] = move.port
            if move.end:
                detail["end"] = move.end
            ctx.steps.append((instance.pk, node_id, move.outcome, detail, ctx.now))
        if move.wait_until is not None:
            instance.state, instance.next_run_at = InstanceState.WAITING, move.wait_until
            continue
        if move.end:
            _leave(ctx, instance, move.end)
            continue
        target = graph.next(node_id, move.port) if move.port else None
        if node_id not in instance.path:
            instance.path = [*instance.path, node_id]
        if target is None:
            _leave(ctx, instance, InstanceState.DONE)
            continue
        instance.node, instance.node_at = target, ctx.now
        instance.state, instance.next_run_at = InstanceState.ACTIVE, ctx.now
        moved.append(instance)
    return moved


def _leave(ctx: Context, instance: JourneyInstance, state: str) -> None:
    instance.state, instance.next_run_at, instance.left_at = state, None, ctx.now
    if instance.node not in instance.path:
        instance.path = [*instance.path, instance.node]
    ctx.feedback[instance.brand_id].append(
        (
            instance.oneid,
            EVENT_EXITED,
            f"journey:{instance.pk}:exited",
            ctx.now,
            {"journey": instance.journey_id, "node": instance.node, "state": state},
        )
    )


# saving: one UPDATE per distinct set of new values, not one per person -----------------
FIELDS = (
    "node",
    "node_at",
    "state",
    "next_run_at",
    "group",
    "path",
    "left_at",
    "last_send_at",
    "last_send_node",
    "last_variant",
)


def _fields(instance: JourneyInstance) -> tuple:
    return tuple(tuple(getattr(instance, f)) if f == "path" else getattr(instance, f) for f in FIELDS)


def _save(instances: list[JourneyInstance], original: dict[int, tuple], lease: dt.datetime) -> None:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for instance in instances:
        groups[_fields(instance)].append(instance.pk)
    if _postgres():
        _save_postgres(groups, lease)
        return
    for values, pks in groups.items():
        changes = dict(zip(FIELDS, values, strict=True))
        changes["path"] = list(changes["path"])
        for start in range(0, len(pks), SAVE_CHUNK):
            JourneyInstance.objects.filter(
                pk__in=pks[start : start + SAVE_CHUNK], lease_until=lease, state__in=OPEN_STATES
            ).update(lease_until=None, **changes)


def _save_postgres(groups: dict[tuple, list[int]], lease: dt.datetime) -> None:
    """One ``UPDATE … WHERE id = ANY(array)`` per distinct set of new values: the values
    and the pks as parameters (not a parameter per pk), still only rows held under the
    lease and open."""
    table = JourneyInstance._meta.db_table
    columns = ", ".join(
        f'"{JourneyInstance._meta.get_field(f).column}" = %s' + ("::jsonb" if f == "path" else "")
        for f in FIELDS
    )
    sql = (
        f"UPDATE {table} SET {columns}, lease_until = NULL "
        "WHERE id = ANY(%s::bigint[]) AND lease_until = %s AND state = ANY(%s::varchar[])"
    )
    with connection.cursor() as cursor:
        for values, pks in groups.items():
            changes = dict(zip(FIELDS, values, strict=True))
            changes["path"] = json.dumps(list(changes["path"]), ensure_ascii=False)
            cursor.execute(sql, [*(changes[f] for f in FIELDS), pks, lease, list(OPEN_STATES)])


def leave_rows(instances: list[JourneyInstance], state: str, now: dt.datetime) -> int:
    """Take people out of their journey in bulk (a goal reached that ends it)."""
    pks = [i.pk for i in instances]
    left = 0
    for start in range(0, len(pks), 1000):
        left += JourneyInstance.objects.filter(
            pk__in=pks[start : start + 1000], state__in=OPEN_STATES
        ).update(state=state, next_run_at=None, left_at=now, lease_until=None)
    return left


# node handlers -------------------------------------------------------------------
def _entry(ctx: Context, graph: Graph, node_id: str, batch) -> dict[int, Move]:
    for instance in batch:
        ctx.feedback[instance.brand_id].append(
            (
                instance.oneid,
                EVENT_ENTERED,
                f"journey:{instance.pk}:entered",
                instance.entered_at,
                {"journey": instance.journey_id, "version": ctx.versions[instance.version_id].number},
            )
        )
    return {i.pk: Move(port="next", outcome=StepOutcome.ENTERED) for i in batch}


def _wait(ctx: Context, graph: Graph, node_id: str, batch) -> dict[int, Move]:
    config = graph.config(node_id)
    mode = config.get("mode")
    moves = {}
    if mode == "event":
        timeout = dt.timedelta(minutes=int(config["within_minutes"]))
        happened = _happened(batch, config.get("event"), ctx.now)
        for instance in batch:
            at = happened.get(instance.pk)
            since = instance.node_at or ctx.now
            if at is not None:
                moves[instance.pk] = Move(
                    port="happened", outcome=StepOutcome.HAPPENED, detail={"at": at.isoformat()}
                )
            elif ctx.now >= since + timeout:
                moves[instance.pk] = Move(port="timeout", outcome=StepOutcome.TIMEOUT)
            else:
                moves[instance.pk] = Move(wait_until=since + timeout)
        return moves
    for instance in batch:
        since = instance.node_at or ctx.now
        if mode == "until_time":
            due = services.next_time_of_day(since, config["time"])
        else:
            due = since + dt.timedelta(minutes=int(config["minutes"]))
        moves[instance.pk] = (
            Move(port="next", outcome=StepOutcome.WAITED) if ctx.now >= due else Move(wait_until=due)
        )
    return moves


def _happened(batch, kind: str, now: dt.datetime) -> dict[int, dt.datetime]:
    """For each instance, the time of the first event of ``kind`` (or order) since it
    arrived at the node, if any: one query for the batch."""
    from tagportal.profiles.models import Event, Order

    by_person: dict[tuple[int, int], list[JourneyInstance]] = defaultdict(list)
    for instance in batch:
        by_person[(instance.brand_id, instance.oneid)].append(instance)
    brands = {b for b, _o in by_person}
    earliest = min(i.node_at or now for i in batch)
    rows = Order.objects.all() if kind == ORDER else Event.objects.filter(type=kind)
    rows = rows.filter(
        brand_id__in=brands,
        customer__oneid__in=sorted({o for _b, o in by_person}),
        time__gte=earliest,
        time__lte=now,
    ).values_list("brand_id", "customer__oneid", "time")
    found: dict[int, dt.datetime] = {}
    for brand_id, oneid, at in rows:
        for instance in by_person.get((brand_id, oneid), []):
            if at >= (instance.node_at or now) and (instance.pk not in found or at < found[instance.pk]):
                found[instance.pk] = at
    return found


def _branch(ctx: Context, graph: Graph, node_id: str, batch) -> dict[int, Move]:
    from tagportal.engine.results import values_for

    config = graph.config(node_id)
    code = config["tag"]
    moves = {}
    by_brand: dict[int, list] = defaultdict(list)
    for instance in batch:
        by_brand[instance.brand_id].append(instance)
    for brand_id, people in by_brand.items():
        values = values_for(brand_id, [i.oneid for i in people], [code])
        for instance in people:
            held = values.get(instance.oneid, {}).get(code)
            value = services.tag_value_text(held.get("value")) if held else ""
            port = next(
                (c["key"] for c in config["cases"] if value and value in [str(v) for v in c["values"]]),
                "else",
            )
            moves[instance.pk] = Move(port=port, outcome=StepOutcome.BRANCHED, detail={"value": value})
    return moves


def _way(journey_id: int, oneid: int, salt: str, ways: list[tuple[str, float]]) -> str:
    point = variants.bucket(journey_id, oneid, salt) * 100
    total = 0.0
    for key, percent in ways:
        total += percent
        if point < total:
            return key
    return ways[-1][0]


def _split(ctx: Context, graph: Graph, node_id: str, batch) -> dict[int, Move]:
    ways = [(w["key"], float(w["percent"])) for w in graph.config(node_id)["ways"]]
    return {
        i.pk: Move(
            port=(key := _way(i.journey_id, i.oneid, f"split:{node_id}", ways)),
            outcome=StepOutcome.BRANCHED,
            detail={"way": key},
        )
        for i in batch
    }


def _holdout(ctx: Context, graph: Graph, node_id: str, batch) -> dict[int, Move]:
    share = float(graph.config(node_id)["holdout_percent"])
    ways = [(HoldoutGroup.HOLDOUT.value, share), (HoldoutGroup.TREATMENT.value, 100 - share)]
    moves = {}
    for instance in batch:
        group = _way(instance.journey_id, instance.oneid, f"holdout:{node_id}", ways)
        instance.group = group
        moves[instance.pk] = Move(port=group, outcome=StepOutcome.BRANCHED, detail={"group": group})
    return moves


def _exit(ctx: Context, graph: Graph, node_id: str, batch) -> dict[int, Move]:
    return {i.pk: Move(outcome=StepOutcome.EXITED, end=InstanceState.EXITED) for i in batch}


def _send(ctx: Context, graph: Graph, node_id: str, batch) -> dict[int, Move]:
    """Quiet hours defer everyone (no step: they are looked at again when they end);
    then per person: consent and suppression, a recipient on the channel, the caps;
    the others get one delivery each, in one send per variant."""
    from tagportal.activation import consent, deliveries, recipients
    from tagportal.activation import variables as tag_variables
    from tagportal.activation.models import ChannelAccount, Delivery
    from tagportal.activation.sends import OPENID_KINDS, SMS_KINDS

    config, node = graph.config(node_id), graph.node(node_id)
    brand_id = batch[0].brand_id
    policy = ctx.policy(brand_id)
    until = services.quiet_until(policy, ctx.now)
    if until is not None:
        return {i.pk: Move(wait_until=until) for i in batch}
    account = ChannelAccount.objects.filter(
        pk=config.get("account"), brand_id=brand_id, is_active=True
    ).first()
    if account is None:
        return {
            i.pk: Move(port="next", outcome=StepOutcome.FAILED, detail={"reason": "account"}) for i in batch
        }
    moves: dict[int, Move] = {}
    oneids = [i.oneid for i in batch]
    pairs = dict(recipients.recipients(account, oneids))
    hashes = {o: [r] for o, r in pairs.items()} if account.kind in SMS_KINDS else None
    openids = {o: [r] for o, r in pairs.items()} if account.kind in OPENID_KINDS else None
    allowed = consent.may_contact_many(
        account.brand, list(pairs), account.kind, phone_hashes=hashes, openids=openids, at=ctx.now
    )
    counts = services.sent_counts(brand_id, list(allowed.allowed), ctx.now)
    journey = ctx.journeys[batch[0].journey_id]
    has_variants = bool(config.get("variants"))
    stats = variants.stats(journey, node_id) if has_variants else {}
    contents = (
        {v["key"]: v["content"] for v in config["variants"]} if has_variants else {"": config.get("content")}
    )
    chosen: dict[str, list[JourneyInstance]] = defaultdict(list)
    for instance in batch:
        if instance.oneid not in pairs:
            moves[instance.pk] = Move(port="next", outcome=StepOutcome.UNREACHABLE)
        elif instance.oneid not in allowed.allowed:
            moves[instance.pk] = Move(
                port="next",
                outcome=StepOutcome.REFUSED,
                detail={"reason": str(allowed.refused.get(instance.oneid, ""))},
            )
        elif cap := services.cap_reached(policy, account.kind, counts.get(instance.oneid)):
            moves[instance.pk] = Move(port="next", outcome=StepOutcome.CAPPED, detail={"cap": cap})
        else:
            key = variants.choose(node, journey, instance.oneid, stats) if has_variants else ""
            chosen[key].append(instance)
    for key, people in chosen.items():
        codes = tag_variables.codes_in(contents[key])
        values = tag_variables.values_of(account.brand, [i.oneid for i in people], codes) if codes else {}
        send = deliveries.create_send(
            account,
            contents[key],
            [(i.oneid, pairs[i.oneid]) for i in people],
            now=ctx.now,
            kick=False,
            variables=values,
        )
        _mark_send(send, journey, node_id, key)
        ctx.sends.append(send.pk)
        delivered = dict(Delivery.objects.filter(send=send).values_list("oneid", "pk"))
        for instance in people:
            detail = {"kind": account.kind, "send": send.pk, "delivery": delivered.get(instance.oneid)}
            if key:
                detail["variant"] = key
            moves[instance.pk] = Move(port="next", outcome=StepOutcome.SENT, detail=detail)
            instance.last_send_at, instance.last_send_node, instance.last_variant = ctx.now, node_id, key
    return moves


def _mark_send(send, journey: Journey, node_id: str, variant: str) -> None:
    """Keep where the send came from on it, where the send has a context."""
    model = type(send)
    if any(f.name == "context" for f in model._meta.get_fields()):
        context = {"journey": journey.pk, "node": node_id}
        if variant:
            context["variant"] = variant
        model.objects.filter(pk=send.pk).update(context=context)


def _sync_tag(ctx: Context, graph: Graph, node_id: str, batch) -> dict[int, Move]:
    """Tag the batch's people on the platform (``activation.syncs.tag_people``): queued
    in this transaction as sync batches the periodic sync task applies, so a batch
    rolled back tags nobody. A person with no recipient on the channel is recorded
    ``unreachable``; everyone goes on."""
    from tagportal.activation import syncs
    from tagportal.activation.models import ChannelAccount

    config = graph.config(node_id)
    account = ChannelAccount.objects.filter(
        pk=config.get("account"), brand_id=batch[0].brand_id, is_active=True
    ).first()
    if account is None:
        return {
            i.pk: Move(port="next", outcome=StepOutcome.FAILED, detail={"reason": "account"}) for i in batch
        }
    options = {k: config[k] for k in ("userid", "tag_id") if config.get(k)}
    try:
        result = syncs.tag_people(
            account,
            config.get("tag_name", ""),
            [i.oneid for i in batch],
            tag_group=config.get("tag_group", ""),
            options=options,
            now=ctx.now,
        )
    except syncs.SyncRefused as exc:
        return {
            i.pk: Move(
                port="next", outcome=StepOutcome.FAILED, detail={"reason": "refused", "error": str(exc)}
            )
            for i in batch
        }
    reached = set(result["reached"])
    detail = {"kind": account.kind, "sync": result["sync"], "tag": config.get("tag_name", "")}
    return {
        i.pk: Move(port="next", outcome=StepOutcome.SYNCED, detail=detail)
        if i.oneid in reached
        else Move(port="next", outcome=StepOutcome.UNREACHABLE, detail=detail)
        for i in batch
    }


def _set_tag(ctx: Context, graph: Graph, node_id: str, batch) -> dict[int, Move]:
    import pandas as pd

    from tagportal.catalog.models import Tag
    from tagportal.engine.models import TagComputation
    from tagportal.engine.services import ValuesRefused, store_values, stored_series

    config = graph.config(node_id)
    brand_id = batch[0].brand_id
    tag = Tag.objects.filter(brand_id=brand_id, code=config["tag"]).first()
    failed = {i.pk: Move(port="next", outcome=StepOutcome.FAILED, detail={"reason": "tag"}) for i in batch}
    if tag is None:
        return failed
    value = _typed(tag.value_type, config["value"])
    computation = TagComputation.objects.filter(tag=tag).first()
    current = stored_series(computation) if computation is not None else None
    people = sorted({i.oneid for i in batch})
    new = pd.Series([value] * len(people), index=pd.Index(people, dtype="int64", name="oneid"))
    if current is not None and len(current):
        new = pd.concat([current[~current.index.isin(people)], new])
    try:
        with transaction.atomic():
            store_values(tag, new)
    except ValuesRefused as exc:
        for move in failed.values():
            move.detail["error"] = str(exc)
        return failed
    return {
        i.pk: Move(port="next", outcome=StepOutcome.TAGGED, detail={"value": config["value"]}) for i in batch
    }


def _typed(value_type: str, value: str):
    if value_type == "boolean":
        return value.strip().lower() in {"true", "1", "yes", "是"}
    if value_type == "number":
        return float(value)
    return value


HANDLERS = {
    NodeType.ENTRY: _entry,
    NodeType.WAIT: _wait,
    NodeType.BRANCH: _branch,
    NodeType.SPLIT: _split,
    NodeType.HOLDOUT: _holdout,
    NodeType.SEND: _send,
    NodeType.SYNC_TAG: _sync_tag,
    NodeType.SET_TAG: _set_tag,
    NodeType.EXIT: _exit,
}
