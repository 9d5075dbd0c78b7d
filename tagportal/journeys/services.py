"""Journeys' business rules outside the node-by-node advance (:mod:`.runner`):

- who enters (:func:`enter`): one instance per (version, person, entry), the entry
  policy (``never``: once per journey; ``after_days``: again once the last entry is N
  days old and the person is no longer inside), written in bulk;
- the triggers that call it: a new audience snapshot (:func:`on_snapshot_taken`, the
  people who joined), new tag results (:func:`on_results_updated`, the people who newly
  hold the value since the last look, :func:`newly_holding`), a schedule over an audience (:func:`run_schedules`), and new events
  and orders read by id (:func:`poll_activity`), which also wake people waiting for an
  event and records goals (:class:`~.models.Conversion`, last touch);
- the contact policy: quiet hours (:func:`quiet_until`) and the messages already sent
  a person in a Beijing day and week, journeys' and campaigns' (:func:`sent_counts`);
- the feedback events written to profiles (:func:`write_feedback`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from tagportal.activation.models import DeliveryState
from tagportal.activation.receipts import IN_DOUBT
from tagportal.core.days import BEIJING, beijing_date, beijing_midnight

from .choices import (
    EVENT_CONVERTED,
    OPEN_STATES,
    InstanceState,
    JourneyStatus,
    NodeType,
    Reentry,
    StepOutcome,
    Trigger,
)
from .graph import ORDER, Graph, parse_moment
from .models import (
    ContactPolicy,
    Conversion,
    InstanceStep,
    Journey,
    JourneyInstance,
    JourneyVersion,
    RunnerCursor,
    TagEntryLook,
)

log = logging.getLogger(__name__)

#: People entered per bulk statement.
ENTRY_CHUNK = 5000
#: New events (or orders) read per batch of a poll.
POLL_LIMIT = 20000
#: Batches per table and poll at most (a backlog of up to 20 × 20,000 rows drains in one run).
POLL_ROUNDS = 20
#: Seconds a poll goes on reading full batches at most (the periodic task runs every minute).
POLL_SECONDS = 40.0


# live versions -------------------------------------------------------------------
@dataclass
class Live:
    journey: Journey
    version: JourneyVersion
    graph: Graph

    @property
    def entry(self) -> dict:
        return self.graph.config(self.graph.entry())


def live_versions(brand_id: int | None = None) -> list[Live]:
    """The live journeys (of a brand) with their live version, parsed."""
    journeys = Journey.objects.filter(status=JourneyStatus.LIVE, live_version__isnull=False).select_related(
        "live_version"
    )
    if brand_id is not None:
        journeys = journeys.filter(brand_id=brand_id)
    out = []
    for journey in journeys:
        graph = Graph(journey.live_version.graph)
        try:
            graph.entry()
        except StopIteration:
            continue
        out.append(Live(journey, journey.live_version, graph))
    return out


# entering -----------------------------------------------------------------------
def enter(live: Live, oneids: Iterable[int], *, now: dt.datetime | None = None) -> int:
    """Enter ``oneids`` into the live version of a journey under its re-entry policy;
    answers how many entered. People already inside never enter twice."""
    now = now or timezone.now()
    config = live.entry
    policy = config.get("reentry", Reentry.NEVER)
    days = int(config.get("reentry_days") or 0)
    entry_node = live.graph.entry()
    people = sorted({int(o) for o in oneids})
    entered = 0
    for start in range(0, len(people), ENTRY_CHUNK):
        chunk = people[start : start + ENTRY_CHUNK]
        seen = {
            row["oneid"]: row
            for row in JourneyInstance.objects.filter(journey=live.journey, oneid__in=chunk)
            .values("oneid")
            .annotate(
                seq=Max("entry_seq"),
                last=Max("entered_at"),
                open=Count("pk", filter=Q(state__in=OPEN_STATES)),
            )
        }
        rows = []
        for oneid in chunk:
            before = seen.get(oneid)
            if before is not None:
                if policy != Reentry.AFTER_DAYS or before["open"]:
                    continue
                if before["last"] > now - dt.timedelta(days=days):
                    continue
            rows.append(
                JourneyInstance(
                    journey=live.journey,
                    version=live.version,
                    brand_id=live.journey.brand_id,
                    oneid=oneid,
                    entry_seq=(before["seq"] + 1) if before else 1,
                    node=entry_node,
                    node_at=now,
                    state=InstanceState.ACTIVE,
                    next_run_at=now,
                    entered_at=now,
                )
            )
        created = JourneyInstance.objects.bulk_create(rows, batch_size=1000, ignore_conflicts=True)
        entered += len(created)
    return entered


def on_snapshot_taken(sender, audience_id: int, number: int, now=None, **kwargs) -> int:
    """Enter the people who joined the audience in its new snapshot, in each live
    journey whose entry is that audience."""
    from tagportal.audiences.models import AudienceSnapshot
    from tagportal.audiences.services import snapshot_diff

    targets = [
        live
        for live in live_versions()
        if live.entry.get("trigger") == Trigger.AUDIENCE and live.entry.get("audience") == audience_id
    ]
    if not targets:
        return 0
    snapshot = AudienceSnapshot.objects.filter(audience_id=audience_id, number=number).first()
    if snapshot is None:
        return 0
    joined = snapshot_diff(snapshot)["joined"]
    total = 0
    for live in targets:
        try:
            total += enter(live, joined, now=now)
        except Exception:  # one journey's failure leaves the others (and the snapshot) alone
            log.exception(
                "entering snapshot %s of audience %s into journey %s failed",
                number,
                audience_id,
                live.journey.pk,
            )
    return total


def tag_value_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _holders(brand_id: int, code: str, value: str, oneids=None) -> list[int]:
    """People of the brand whose tag ``code`` has ``value`` now (among ``oneids``)."""
    from tagportal.catalog.models import Tag
    from tagportal.engine.results import value_bitmaps, values_for

    if oneids is not None:
        found = values_for(brand_id, oneids, [code])
        return [
            o
            for o, tags in found.items()
            if code in tags and tag_value_text(tags[code].get("value")) == value
        ]
    tag = Tag.objects.filter(brand_id=brand_id, code=code).first()
    if tag is None:
        return []
    maps = value_bitmaps([tag.pk]).get(tag.pk, {})
    return list(maps.get(value, ()))


def newly_holding(live: Live, holders, among=None, *, now: dt.datetime | None = None) -> list[int]:
    """The people of ``holders`` (who hold the tag trigger's value now) who did not hold it
    at the live version's last look (:class:`~.models.TagEntryLook`), and the look moved
    on: ``among`` is who was looked at (None: everyone, ``holders`` is the whole set). The
    first look after the version goes live answers every holder. Call it inside a
    transaction: the look row is locked until it ends."""
    from django.db import IntegrityError
    from pyroaring import BitMap

    now = now or timezone.now()
    holders = BitMap(int(o) for o in holders)
    look = TagEntryLook.objects.select_for_update().filter(version=live.version).first()
    if look is None:
        previous, state = None, BitMap(holders)
    else:
        previous = BitMap.deserialize(bytes(look.holders))
        state = BitMap(holders) if among is None else (previous - BitMap(int(o) for o in among)) | holders
    state.run_optimize()
    data = state.serialize()
    if look is None:
        try:
            with transaction.atomic():
                TagEntryLook.objects.create(version=live.version, holders=data, looked_at=now)
        except IntegrityError:  # another worker looked first: go by its look
            return newly_holding(live, holders, among, now=now)
    else:
        TagEntryLook.objects.filter(pk=look.pk).update(holders=data, looked_at=now)
    fresh = holders if previous is None else holders - previous
    return list(fresh)


def on_results_updated(sender, brand_id: int, tag_ids, now=None, **kwargs) -> int:
    """Enter the people who newly hold the value of a tag trigger whose tag was recomputed
    (:func:`newly_holding`: holding it now, not at the journey's last look)."""
    from tagportal.catalog.models import Tag

    codes = set(Tag.objects.filter(pk__in=list(tag_ids or [])).values_list("code", flat=True))
    total = 0
    for live in live_versions(brand_id):
        entry = live.entry
        if entry.get("trigger") == Trigger.TAG and entry.get("tag") in codes:
            with transaction.atomic():
                holders = _holders(brand_id, entry["tag"], str(entry.get("value")))
                fresh = newly_holding(live, holders, now=now)
                total += enter(live, fresh, now=now) if fresh else 0
    return total


def run_schedules(now: dt.datetime | None = None) -> int:
    """Enter an audience's members into the live journeys whose schedule is due: once at
    a time, or at each time of a cron expression (Beijing time); the last run is kept
    on the journey so a run is never repeated."""
    from croniter import croniter

    from tagportal.audiences.models import Audience
    from tagportal.audiences.services import members

    now = now or timezone.now()
    total = 0
    for live in live_versions():
        entry = live.entry
        if entry.get("trigger") != Trigger.SCHEDULE:
            continue
        schedule = entry.get("schedule") or {}
        state = dict(live.journey.entry_state or {})
        key = f"v{live.version.number}"
        last = parse_moment(state.get(key))
        if "cron" in schedule:
            base = (
                last
                or parse_moment(state.get("live_since"))
                or live.version.approved_at
                or live.journey.updated
            )
            due = croniter(schedule["cron"], base.astimezone(BEIJING)).get_next(dt.datetime)
        else:
            due = None if last else parse_moment(schedule.get("once_at"))
        if due is None or due > now:
            continue
        with transaction.atomic():
            # the journey row is the lock: two ticks never run one schedule twice
            locked = Journey.objects.select_for_update().get(pk=live.journey.pk)
            if (locked.entry_state or {}).get(key) != state.get(key):
                continue
            audience = Audience.objects.filter(pk=entry.get("audience"), brand_id=locked.brand_id).first()
            if audience is not None:
                total += enter(live, members(audience), now=now)
            Journey.objects.filter(pk=locked.pk).update(
                entry_state={**(locked.entry_state or {}), key: now.isoformat()}
            )
    return total


# contact policy ------------------------------------------------------------------
def policy_for(brand_id: int) -> ContactPolicy:
    """The brand's contact policy (the defaults when it has none saved)."""
    return ContactPolicy.objects.filter(brand_id=brand_id).first() or ContactPolicy(brand_id=brand_id)


def quiet_until(policy: ContactPolicy, now: dt.datetime) -> dt.datetime | None:
    """The end of the quiet hours ``now`` falls in (Beijing time), or None if sending is
    allowed now. Quiet hours may cross midnight (21:00–09:00)."""
    start, end = policy.quiet_start, policy.quiet_end
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(BEIJING)
    t, day = local.time(), local.date()
    if start < end:
        quiet = start <= t < end
        end_day = day
    else:
        quiet = t >= start or t < end
        end_day = day + dt.timedelta(days=1) if t >= start else day
    if not quiet:
        return None
    return dt.datetime.combine(end_day, end, tzinfo=BEIJING)


def next_time_of_day(after: dt.datetime, hhmm: str) -> dt.datetime:
    """The first moment at or after ``after`` whose Beijing time is ``hhmm``."""
    hour, minute = (int(p) for p in hhmm.split(":"))
    local = after.astimezone(BEIJING)
    moment = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if moment < local:
        moment = dt.datetime.combine(
            local.date() + dt.timedelta(days=1), dt.time(hour, minute), tzinfo=BEIJING
        )
    return moment


def week_start(now: dt.datetime) -> dt.datetime:
    """The start (Monday 00:00, Beijing) of the Beijing calendar week of ``now``."""
    day = beijing_date(now)
    return beijing_midnight(day - dt.timedelta(days=day.weekday()))


#: Delivery states that do not count against a cap: refused before sending (consent,
#: suppression: ``failed`` with ``last_error_code="refused"``), failed for good or out of
#: attempts. A ``failed`` delivery whose answer was lost ("in doubt") may have reached the
#: person and counts.
UNCOUNTED_DELIVERY_STATES = (DeliveryState.FAILED, DeliveryState.DEAD)


def sent_counts(
    brand_id: int, oneids: Iterable[int], now: dt.datetime
) -> dict[int, dict[str, dict[str, int]]]:
    """``{oneid: {"day": {kind: n, "*": n}, "week": {...}}}``: the messages sent to each
    person this Beijing day and week, per channel kind and in all — the journeys' (steps
    ``sent``, at the runner's time) and every other send of the brand (activation
    deliveries of sends not made by a journey, at their creation, unless refused or
    failed). A journey's deliveries are counted once, by their step. One query."""
    from django.db.models import F
    from django.db.models.fields.json import KT

    from tagportal.activation.models import Delivery

    people = list(oneids)
    today = beijing_midnight(beijing_date(now))
    monday = week_start(now)
    since = min(today, monday)
    counts: dict[int, dict[str, dict[str, int]]] = defaultdict(
        lambda: {"day": defaultdict(int), "week": defaultdict(int)}
    )
    if not people:
        return counts
    steps = (
        InstanceStep.objects.filter(
            instance__brand_id=brand_id,
            instance__oneid__in=people,
            outcome=StepOutcome.SENT,
            at__gte=since,
            at__lte=now,
        )
        .annotate(p=F("instance__oneid"), k=KT("detail__kind"), t=F("at"))
        .values_list("p", "k", "t")
        .order_by()
    )
    others = (
        Delivery.objects.filter(
            send__brand_id=brand_id,
            oneid__in=people,
            created__gte=since,
            created__lte=now,
        )
        .filter(Q(send__context__isnull=True) | ~Q(send__context__has_key="journey"))
        .exclude(Q(state__in=UNCOUNTED_DELIVERY_STATES) & ~Q(last_error_code=IN_DOUBT))
        .annotate(p=F("oneid"), k=F("send__kind"), t=F("created"))
        .values_list("p", "k", "t")
        .order_by()
    )
    for oneid, kind, at in steps.union(others, all=True):
        kind = kind or ""
        if at >= monday:
            counts[oneid]["week"][kind] += 1
            counts[oneid]["week"]["*"] += 1
        if at >= today:
            counts[oneid]["day"][kind] += 1
            counts[oneid]["day"]["*"] += 1
    return counts


def cap_reached(policy: ContactPolicy, kind: str, counted: dict[str, dict[str, int]] | None) -> str:
    """Which cap a person reached for a message of ``kind`` ("" if none)."""
    if not counted:
        return ""
    caps = (policy.caps or {}).get(kind) or {}
    for period in ("day", "week"):
        limit = caps.get(period)
        if isinstance(limit, int) and counted[period][kind] >= limit:
            return f"{kind}:{period}"
    if policy.global_day is not None and counted["day"]["*"] >= policy.global_day:
        return "global:day"
    if policy.global_week is not None and counted["week"]["*"] >= policy.global_week:
        return "global:week"
    return ""


# feedback events -----------------------------------------------------------------
def write_feedback(brand_id: int, rows: list[tuple[int, str, str, dt.datetime, dict]]) -> None:
    """Write profiles events ``(oneid, type, key, time, properties)`` (``key`` makes the
    event's client id: writing it again adds nothing). People without a profile are
    skipped (:func:`tagportal.profiles.bulk.write_events`)."""
    from tagportal.profiles.bulk import write_events

    write_events(brand_id, rows, channel="journey")


# new events and orders -----------------------------------------------------------
def _cursor(name: str, model) -> RunnerCursor:
    """The cursor, locked (created at the table's current end: history is not replayed)."""
    cursor = RunnerCursor.objects.select_for_update().filter(name=name).first()
    if cursor is None:
        top = model.objects.aggregate(top=Max("pk"))["top"] or 0
        RunnerCursor.objects.get_or_create(name=name, defaults={"position": top})
        cursor = RunnerCursor.objects.select_for_update().get(name=name)
    return cursor


def start_cursors() -> None:
    """Create the cursors over events and orders at their current end (if missing)."""
    from tagportal.profiles.models import Event, Order

    with transaction.atomic():
        _cursor("events", Event)
        _cursor("orders", Order)


@dataclass
class Activity:
    pk: int
    brand_id: int
    oneid: int
    type: str
    time: dt.datetime
    amount: Decimal


def _read_new(
    name: str, model, types: set[str] | None, limit: int
) -> tuple[RunnerCursor, list[Activity], int]:
    cursor = _cursor(name, model)
    top = model.objects.aggregate(top=Max("pk"))["top"] or 0
    found: list[Activity] = []
    if top > cursor.position and (types is None or types):
        rows = model.objects.filter(pk__gt=cursor.position, pk__lte=top)
        if types is not None:
            rows = rows.filter(type__in=sorted(types))
        fields = ["pk", "brand_id", "customer__oneid", "time"]
        fields.append("amount" if model.__name__ == "Order" else "type")
        for row in rows.order_by("pk").values_list(*fields)[:limit]:
            pk, brand_id, oneid, time, extra = row
            if model.__name__ == "Order":
                found.append(Activity(pk, brand_id, oneid, ORDER, time, extra or Decimal(0)))
            else:
                found.append(Activity(pk, brand_id, oneid, extra, time, Decimal(0)))
    position = found[-1].pk if len(found) >= limit else max(top, cursor.position)
    return cursor, found, position


def _interest(lives: list[Live], versions: dict[int, Graph]) -> tuple[set[str], bool]:
    """Event types the journeys react to, and whether any reacts to orders."""
    types: set[str] = set()
    for live in lives:
        entry = live.entry
        if entry.get("trigger") == Trigger.EVENT:
            types.add(entry.get("event"))
        if entry.get("trigger") == Trigger.TAG:
            types.add("*")  # a realtime tag may change on any event
    for graph in versions.values():
        for nid, node in graph.nodes.items():
            if node.get("type") == NodeType.WAIT and graph.config(nid).get("mode") == "event":
                types.add(graph.config(nid).get("event"))
        if graph.goal:
            types.add(ORDER if graph.goal.get("kind") == ORDER else graph.goal.get("event"))
    orders = ORDER in types
    types.discard(ORDER)
    return types, orders


def _open_versions() -> dict[int, Graph]:
    """The graphs of the versions that still have people inside, of journeys live or paused."""
    ids = (
        JourneyInstance.objects.filter(
            state__in=OPEN_STATES, journey__status__in=[JourneyStatus.LIVE, JourneyStatus.PAUSED]
        )
        .values_list("version_id", flat=True)
        .distinct()
    )
    graphs = {v.pk: Graph(v.graph) for v in JourneyVersion.objects.filter(pk__in=list(ids))}
    for journey in Journey.objects.filter(
        status__in=[JourneyStatus.LIVE, JourneyStatus.PAUSED], live_version__isnull=False
    ).select_related("live_version"):
        graphs.setdefault(journey.live_version_id, Graph(journey.live_version.graph))
    return graphs


def poll_activity(
    now: dt.datetime | None = None,
    limit: int = POLL_LIMIT,
    *,
    rounds: int | None = None,
    seconds: float | None = None,
) -> dict:
    """Read the events and orders written since the last poll (by id) and act on them:
    event entries, tag entries of people whose realtime tags may have moved, people
    waiting for that event woken, goals recorded.

    Reads ``limit`` rows at a time, each batch in its own transaction (the cursor moves
    with it), and goes on while a batch was full — at most ``rounds`` batches per table
    and ``seconds`` in all (:data:`POLL_ROUNDS`, :data:`POLL_SECONDS`), so a backlog
    drains within one periodic run and the rest waits for the next. Rows are never
    skipped: the cursor stops at the last row read."""
    import time

    from tagportal.profiles.models import Event, Order

    now = now or timezone.now()
    rounds = POLL_ROUNDS if rounds is None else max(1, int(rounds))
    budget = time.monotonic() + (POLL_SECONDS if seconds is None else float(seconds))
    lives = live_versions()
    graphs = _open_versions()
    types, orders = _interest(lives, graphs)
    done = {"events": 0, "orders": 0, "entered": 0, "woken": 0, "converted": 0, "rounds": 0}
    for name, model, wanted, who in (
        ("events", Event, None if "*" in types else types, lives),
        ("orders", Order, None if orders else set(), []),
    ):
        for _round in range(rounds):
            with transaction.atomic():
                cursor, found, position = _read_new(name, model, wanted, limit)
                done[name] += len(found)
                _act(found, who, graphs, now, done)
                RunnerCursor.objects.filter(pk=cursor.pk).update(position=position)
            done["rounds"] += 1
            if len(found) < limit or time.monotonic() >= budget:
                break
    return done


def _act(found: list[Activity], lives: list[Live], graphs: dict[int, Graph], now, done: dict) -> None:
    if not found:
        return
    by_brand: dict[int, list[Activity]] = defaultdict(list)
    for item in found:
        by_brand[item.brand_id].append(item)
    for live in lives:
        entry, items = live.entry, by_brand.get(live.journey.brand_id, [])
        if not items:
            continue
        if entry.get("trigger") == Trigger.EVENT:
            people = [a.oneid for a in items if a.type == entry.get("event")]
            done["entered"] += enter(live, people, now=now) if people else 0
        elif entry.get("trigger") == Trigger.TAG:
            people = sorted({a.oneid for a in items})
            holders = _holders(live.journey.brand_id, entry["tag"], str(entry.get("value")), people)
            fresh = newly_holding(live, holders, people, now=now)
            done["entered"] += enter(live, fresh, now=now) if fresh else 0
    # people waiting for what happened: looked at now
    for version_id, graph in graphs.items():
        waits: dict[str, list[str]] = defaultdict(list)
        for nid, node in graph.nodes.items():
            if node.get("type") == NodeType.WAIT and graph.config(nid).get("mode") == "event":
                waits[graph.config(nid).get("event")].append(nid)
        for kind, nodes in waits.items():
            people = sorted({a.oneid for a in found if a.type == kind})
            if people:
                done["woken"] += JourneyInstance.objects.filter(
                    version_id=version_id, node__in=nodes, state=InstanceState.WAITING, oneid__in=people
                ).update(next_run_at=now)
    done["converted"] += record_goals(found, graphs, now)


def record_goals(found: list[Activity], graphs: dict[int, Graph], now: dt.datetime) -> int:
    """Record the conversions the activities make: for each version with a goal they
    match, the person's latest entry whose window holds the activity, attributed to
    the last send before it (last touch). Each instance converts once; a goal that
    ends the journey takes the person out."""
    from .runner import leave_rows

    created = 0
    for version_id, graph in graphs.items():
        goal = graph.goal
        if not goal:
            continue
        wanted = ORDER if goal.get("kind") == ORDER else goal.get("event")
        items = [a for a in found if a.type == wanted]
        if not items:
            continue
        window = dt.timedelta(days=int(goal.get("window_days") or 0))
        from_send = goal.get("from") == "send"
        earliest = min(a.time for a in items) - window
        candidates = list(
            JourneyInstance.objects.filter(
                version_id=version_id,
                oneid__in=sorted({a.oneid for a in items}),
                entered_at__gte=earliest,
                conversions__isnull=True,
            ).order_by("-entered_at")
        )
        if not candidates:
            continue
        sends: dict[int, list[tuple[dt.datetime, str, dict]]] = defaultdict(list)
        for instance_id, node, detail, at in InstanceStep.objects.filter(
            instance__in=[c.pk for c in candidates], outcome=StepOutcome.SENT
        ).values_list("instance_id", "node", "detail", "at"):
            sends[instance_id].append((at, node, detail or {}))
        by_person: dict[int, list[JourneyInstance]] = defaultdict(list)
        for instance in candidates:
            by_person[instance.oneid].append(instance)
        taken: set[int] = set()
        conversions, feedback, ended = [], [], []
        for item in sorted(items, key=lambda a: (a.time, a.pk)):
            for instance in by_person.get(item.oneid, []):
                if instance.pk in taken or instance.entered_at > item.time:
                    continue
                touches = sorted(t for t in sends.get(instance.pk, []) if t[0] <= item.time)
                last = touches[-1] if touches else None
                start = (last[0] if last else None) if from_send else instance.entered_at
                if start is None or item.time > start + window:
                    continue
                taken.add(instance.pk)
                conversions.append(
                    Conversion(
                        instance=instance,
                        journey_id=instance.journey_id,
                        at=item.time,
                        kind="order" if item.type == ORDER else "event",
                        source_id=item.pk,
                        amount=item.amount,
                        attributed_node=last[1] if last else "",
                        attributed_variant=str(last[2].get("variant", "")) if last else "",
                        attributed_delivery_id=last[2].get("delivery") if last else None,
                    )
                )
                feedback.append(
                    (
                        instance.oneid,
                        EVENT_CONVERTED,
                        f"journey:{instance.pk}:converted",
                        item.time,
                        {
                            "journey": instance.journey_id,
                            "version": version_id,
                            "node": last[1] if last else "",
                        },
                    )
                )
                if goal.get("ends_journey", True) and instance.state in OPEN_STATES:
                    ended.append(instance)
                break
        Conversion.objects.bulk_create(conversions, batch_size=1000, ignore_conflicts=True)
        created += len(conversions)
        brand_feedback: dict[int, list] = defaultdict(list)
        for instance, row in zip([c.instance for c in conversions], feedback, strict=True):
            brand_feedback[instance.brand_id].append(row)
        for brand_id, rows in brand_feedback.items():
            write_feedback(brand_id, rows)
        if ended:
            leave_rows(ended, InstanceState.CONVERTED, now)
    return created
