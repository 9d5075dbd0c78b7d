"""Audience state changes and reads: the one place they live. Pages, the API, the admin
and tasks call these functions; none of them sets a status or writes a snapshot itself.

- :func:`estimate` counts an expression while it is being built (no write).
- :func:`create_audience` / :func:`update_audience` / :func:`archive_audience` validate,
  save the expression with its canonical text, the tags it reads and the versions of
  their results (the *pins*), and take a snapshot, atomically.
- :func:`refresh` follows PostHog's versioned computation: it bumps ``pending_version``
  (or runs the one :func:`enqueue_refresh` queued), marks the audience calculating,
  evaluates, and writes a snapshot only if no newer refresh was requested meanwhile.
  An audience is reproducible: if a tag it reads now has a result of another version
  than the pinned one, it is not refreshed silently; it waits for a re-pin
  (:func:`repin`, through a data steward's approval when it is live in a journey).
- Snapshots keep the members as a Roaring bitmap and how many joined and left against
  the previous one (:func:`snapshot_diff` gives who).
- :func:`export_rows` / :func:`export_csv` hand out members as OneIDs or as identities
  of one type (masked without the PII permission) and count the export as usage.
- :func:`due_for_refresh` and :func:`enqueue_refresh` feed the Celery tasks; tags
  recomputed by the engine trigger refreshes through ``engine.signals.results_updated``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from pyroaring import BitMap

from tagportal.core import spreadsheets
from tagportal.core.claims import pause_point
from tagportal.core.exceptions import Conflict, error_text
from tagportal.core.permissions import may, may_add_into
from tagportal.core.roles import reviewers_of
from tagportal.engine import bitmaps as bm
from tagportal.notifications import services as notifications
from tagportal.rules.definitions import RuleValidationError

from . import expressions as ex
from .choices import AudienceKind, AudienceStatus, RefreshTrigger
from .members import NoResult, Selection, select
from .models import Audience, AudienceSnapshot
from .signals import snapshot_taken

log = logging.getLogger(__name__)

#: Audience tasks go to this Celery queue.
QUEUE = "default"
#: A refresh still "refreshing" after this long is taken to have hung.
STUCK_AFTER = dt.timedelta(hours=1)
#: After n failed refreshes in a row the schedule waits BACKOFF_BASE * 2**(n-1), at most BACKOFF_MAX.
BACKOFF_BASE = dt.timedelta(minutes=15)
BACKOFF_MAX = dt.timedelta(hours=24)
#: Fields :func:`update_audience` changes.
EDITABLE_FIELDS = (
    "name",
    "description",
    "expression",
    "refresh_on_recompute",
    "refresh_every_hours",
    "status",
)
#: Beat schedule (Beijing time) created by migration 0002.
DEFAULT_SCHEDULES = [
    {
        "name": "Refresh audiences due on their schedule",
        "task": "tagportal.audiences.tasks.refresh_due_audiences",
        "crontab": {"minute": "5"},
    },
]


class StalePins(Exception):
    """Tags whose current result is of another version than the pinned one."""

    def __init__(self, moved: dict[str, tuple[int | None, int | None]]):
        self.moved = moved
        super().__init__(_stale_message(moved))


def _stale_message(moved: dict[str, tuple[int | None, int | None]]) -> str:
    parts = [
        _("%(code)s (pinned version %(pinned)s, result of version %(current)s)")
        % {"code": code, "pinned": pinned, "current": current}
        for code, (pinned, current) in sorted(moved.items())
    ]
    return _("Not refreshed: re-pin the audience first; these tags have newer results: %(tags)s.") % {
        "tags": ", ".join(parts)
    }


# ---------------------------------------------------------------------------
# Selecting


def _resolve_brand(brand):
    from tagportal.catalog.models import Brand

    if isinstance(brand, Brand):
        return brand
    try:
        return Brand.objects.get(pk=brand) if isinstance(brand, int) else Brand.objects.get(code=brand)
    except Brand.DoesNotExist as exc:
        raise ValidationError({"brand": [_("No brand “%(brand)s”.") % {"brand": brand}]}) from exc


@error_text.register
def _no_result_text(exc: NoResult) -> str:
    return _("Not computed yet: %(tags)s. Compute the tags first.") % {"tags": ", ".join(exc.codes)}


def _select(brand, expression) -> Selection:
    """:func:`.members.select` with its errors as a Django ``ValidationError`` that names
    the part at fault (an unknown tag or value, a syntax error, a tag not computed yet)."""
    try:
        return select(brand, expression)
    except RuleValidationError as exc:
        raise ValidationError(exc.as_dict()) from exc
    except NoResult as exc:
        raise ValidationError(
            {
                "expression": [
                    _("These tags have not been computed yet: %(tags)s.") % {"tags": ", ".join(exc.codes)}
                ]
            }
        ) from exc


def _client(user, audience: Audience | None = None) -> int:
    if user is not None and getattr(user, "pk", None):
        return int(user.pk)
    return int(audience.owner_id or 0) if audience is not None else 0


def _record(tag_ids, client: int, kind) -> None:
    from tagportal.usage import services as usage

    usage.record_safely(list(tag_ids), client, kind)


def estimate(user, brand, expression) -> dict:
    """The size of ``expression`` (JSON or text) among the brand's people, for the
    builder: ``size``, ``population``, ``share``, the normalised ``expression``, its
    canonical ``text``, the ``tag_versions`` of the results used and ``took_ms``.

    ``brand`` is a Brand, or a code looked up among the brands the user may view.
    ``PermissionDenied`` unless ``user`` may view audiences and the brand;
    ``ValidationError`` naming the unknown tag or value, or the tags not computed yet.
    Nothing is written."""
    started = time.perf_counter()
    if not user.has_perm("audiences.view_audience"):
        raise PermissionDenied(_("You may not view the audiences of this brand."))
    if isinstance(brand, str):  # a code: looked up among the brands the user may view (one query)
        from tagportal.catalog.models import Brand

        code, brand = brand, Brand.objects.restrict(user, "view").filter(code=brand).first()
        if brand is None:
            raise ValidationError({"brand": [_("No brand “%(brand)s” that you may view.") % {"brand": code}]})
    else:
        brand = _resolve_brand(brand)
        if not may(user, brand, "view"):
            raise PermissionDenied(_("You may not view the audiences of this brand."))
    selection = _select(brand, expression)
    return {
        "size": selection.size,
        "population": selection.population,
        "share": selection.share,
        "expression": selection.expression,
        "text": ex.to_text(selection.expression),
        "tag_versions": selection.tag_versions,
        "took_ms": round((time.perf_counter() - started) * 1000, 3),
    }


# ---------------------------------------------------------------------------
# Snapshots


def take_snapshot(
    audience: Audience,
    members: BitMap,
    population: int,
    *,
    trigger: str,
    tag_versions: dict | None = None,
    expression: dict | None = None,
    duration_ms: float | None = None,
    at: dt.datetime | None = None,
) -> AudienceSnapshot:
    """Store ``members`` as the audience's next snapshot (with who joined and left
    against the previous one) and its size on the audience (``update()``: the size is
    computation state, not an edit in its history). Also ends its computation state."""
    at = at or timezone.now()
    with transaction.atomic():
        Audience.objects.select_for_update().filter(pk=audience.pk).values_list("pk", flat=True).first()
        previous = audience.snapshots.order_by("-number").values_list("number", "bitmap").first()
        if previous is None:
            number, before = 1, BitMap()
        else:
            number, before = previous[0] + 1, bm.deserialize(bytes(previous[1]))
        snapshot = AudienceSnapshot.objects.create(
            audience=audience,
            number=number,
            taken_at=at,
            trigger=trigger,
            expression=audience.expression if expression is None else expression,
            tag_versions=dict(audience.pinned_versions if tag_versions is None else tag_versions),
            bitmap=bm.serialize(members),
            size=len(members),
            population=population,
            joined=len(members - before),
            left=len(before - members),
            duration_ms=None if duration_ms is None else round(duration_ms, 3),
        )
        state = {
            "size": len(members),
            "population": population,
            "last_calculated_at": at,
            "is_calculating": False,
            "errors_calculating": 0,
            "last_error": "",
        }
        Audience.objects.filter(pk=audience.pk).update(**state)
        transaction.on_commit(
            lambda: snapshot_taken.send(
                sender=AudienceSnapshot, audience_id=audience.pk, number=snapshot.number
            )
        )
    for name, value in state.items():
        setattr(audience, name, value)
    return snapshot


def snapshot_members(snapshot: AudienceSnapshot) -> BitMap:
    return bm.deserialize(bytes(snapshot.bitmap))


def previous_snapshot(snapshot: AudienceSnapshot) -> AudienceSnapshot | None:
    return (
        AudienceSnapshot.objects.filter(audience_id=snapshot.audience_id, number__lt=snapshot.number)
        .order_by("-number")
        .first()
    )


def snapshot_diff(snapshot: AudienceSnapshot, previous: AudienceSnapshot | None = None) -> dict[str, BitMap]:
    """Who ``joined`` and who ``left`` between ``previous`` (by default the snapshot
    before this one; nobody before the first) and ``snapshot``."""
    if previous is None:
        previous = previous_snapshot(snapshot)
    now = snapshot_members(snapshot)
    before = snapshot_members(previous) if previous is not None else BitMap()
    return {"joined": now - before, "left": before - now}


def members(audience: Audience) -> BitMap:
    """The members at the latest snapshot (empty before the first)."""
    raw = audience.snapshots.order_by("-number").values_list("bitmap", flat=True).first()
    return bm.deserialize(bytes(raw)) if raw is not None else BitMap()


# ---------------------------------------------------------------------------
# Creating and editing


def _check_schedule(refresh_every_hours) -> None:
    if refresh_every_hours is not None and (
        isinstance(refresh_every_hours, bool)
        or not isinstance(refresh_every_hours, int)
        or refresh_every_hours < 1
    ):
        raise ValidationError({"refresh_every_hours": [_("A whole number of hours, at least 1, or empty.")]})


def _check_status(status) -> None:
    if status not in (AudienceStatus.DRAFT, AudienceStatus.ACTIVE):
        raise ValidationError(
            {"status": [_("Choose draft or active (archive an audience by archiving it, not by editing).")]}
        )


def _current_pins(selection: Selection) -> dict[str, int | None]:
    """The versions to pin: each tag's published version when it computes what the result
    used computes (only its description or labels changed since), else the result's."""
    from tagportal.catalog import services as catalog
    from tagportal.catalog.models import Tag

    ids = selection.tag_ids
    if not ids:
        return dict(selection.tag_versions)
    published = dict(Tag.objects.filter(pk__in=list(ids.values())).values_list("pk", "published_version"))
    fingerprints = catalog.version_fingerprints(ids.values())
    return {
        code: catalog.latest_equivalent(fingerprints, ids.get(code), version, published.get(ids.get(code)))
        for code, version in selection.tag_versions.items()
    }


def _pin(audience: Audience, selection: Selection) -> None:
    audience.expression = selection.expression
    audience.expression_text = ex.to_text(selection.expression)
    audience.pinned_versions = _current_pins(selection)


def _supersede(audience: Audience) -> None:
    """Make refreshes in flight (of the old expression or pins) give way."""
    Audience.objects.filter(pk=audience.pk).update(pending_version=F("pending_version") + 1)


def create_audience(
    user,
    *,
    brand,
    name,
    expression,
    description="",
    refresh_on_recompute=True,
    refresh_every_hours=None,
    status=AudienceStatus.ACTIVE,
) -> Audience:
    """Save a rule audience of ``brand``, pinned to its tags' current result versions,
    with its first snapshot (trigger "created"). Nothing is saved on any error."""
    brand = _resolve_brand(brand)
    if not may_add_into(user, Audience, brand):
        raise PermissionDenied(_("You may not create audiences in this brand."))
    _check_status(status)
    _check_schedule(refresh_every_hours)
    started = time.perf_counter()
    selection = _select(brand, expression)
    with transaction.atomic():
        audience = Audience(
            name=(name or "").strip(),
            description=description or "",
            business_line_id=brand.business_line_id,
            brand=brand,
            kind=AudienceKind.RULE,
            status=status,
            owner=user if getattr(user, "pk", None) else None,
            refresh_on_recompute=bool(refresh_on_recompute),
            refresh_every_hours=refresh_every_hours,
        )
        _pin(audience, selection)
        audience.full_clean()
        audience._change_reason = _("Created")
        audience._history_user = audience.owner
        audience.save()
        audience.tags.set(list(selection.tag_ids.values()))
        take_snapshot(
            audience,
            selection.members,
            selection.population,
            trigger=RefreshTrigger.CREATED,
            tag_versions=selection.tag_versions,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    _record(selection.tag_ids.values(), _client(user, audience), _usage_kind())
    return audience


def _usage_kind():
    from tagportal.usage.choices import UsageKind

    return UsageKind.AUDIENCE


def _check_change(user, audience: Audience) -> None:
    if not may(user, audience, "change"):
        raise PermissionDenied(_("You may not change this audience."))


def update_audience(user, audience: Audience, **fields) -> Audience:
    """Change an audience's name, description, schedule, status (draft / active) or
    expression. A new expression is validated, re-pinned to the current results and
    refreshed at once (trigger "manual"); the expression of an audience live in a
    journey cannot change (``Conflict``). Answers the audience as saved."""
    unknown = sorted(set(fields) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({name: [_("This field cannot be changed here.")] for name in unknown})
    _check_change(user, audience)
    if "status" in fields:
        _check_status(fields["status"])
    if "refresh_every_hours" in fields:
        _check_schedule(fields["refresh_every_hours"])
    started = time.perf_counter()
    selection = None
    if "expression" in fields:
        selection = _select(audience.brand, fields["expression"])
        if selection.expression == audience.expression:
            selection = None
        elif audience.kind != AudienceKind.RULE:
            raise ValidationError({"expression": [_("A lookalike audience has no expression to edit.")]})
    with transaction.atomic():
        current = Audience.objects.select_for_update().get(pk=audience.pk)
        if current.status == AudienceStatus.ARCHIVED:
            raise Conflict(_("The audience is archived; it cannot be changed."))
        if selection is not None and current.is_live:
            raise Conflict(
                _(
                    "The audience is live in a journey: its expression cannot change. Make a new audience instead."
                )
            )
        changed = []
        for name in ("name", "description", "refresh_on_recompute", "refresh_every_hours", "status"):
            if name in fields:
                value = fields[name]
                if name == "name":
                    value = (value or "").strip()
                elif name == "description":
                    value = value or ""
                elif name == "refresh_on_recompute":
                    value = bool(value)
                if getattr(current, name) != value:
                    setattr(current, name, value)
                    changed.append(name)
        if selection is not None:
            _pin(current, selection)
            changed.append("expression")
        if not changed:
            return current
        current.full_clean()
        current._change_reason = _("Changed %(fields)s") % {"fields": ", ".join(changed)}
        current._history_user = user
        current.save()
        if selection is not None:
            current.tags.set(list(selection.tag_ids.values()))
            _supersede(current)
            take_snapshot(
                current,
                selection.members,
                selection.population,
                trigger=RefreshTrigger.MANUAL,
                tag_versions=selection.tag_versions,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
    if selection is not None:
        _record(selection.tag_ids.values(), _client(user, current), _usage_kind())
    current.refresh_from_db()
    return current


def archive_audience(user, audience: Audience) -> Audience:
    """Archive an audience (what deleting it means): it is no longer refreshed; its
    snapshots stay. An audience live in a journey cannot be archived (``Conflict``)."""
    _check_change(user, audience)
    with transaction.atomic():
        current = Audience.objects.select_for_update().get(pk=audience.pk)
        if current.status == AudienceStatus.ARCHIVED:
            return current
        if current.is_live:
            raise Conflict(_("The audience is live in a journey; stop the journey before archiving it."))
        current.status = AudienceStatus.ARCHIVED
        current.is_calculating = False
        current._change_reason = _("Archived")
        current._history_user = user
        current.save()
        _supersede(current)
    current.refresh_from_db()
    return current


# ---------------------------------------------------------------------------
# Refreshing


def _not_refreshable(audience: Audience) -> str | None:
    if audience.status == AudienceStatus.ARCHIVED:
        return _("The audience is archived; it is not refreshed.")
    if audience.kind != AudienceKind.RULE:
        return _("A lookalike audience is not refreshed; make a new one from its seed to use newer results.")
    return None


def _moved(pinned: dict, current: dict, tag_ids: dict[str, int] | None = None) -> dict[str, tuple]:
    """Tags whose ``current`` version computes something else than the ``pinned`` one
    (by their computation fingerprints: a version that only changed a description is
    the same computation)."""
    from tagportal.catalog import services as catalog

    differ = {code: version for code, version in current.items() if pinned.get(code) != version}
    if not differ or not tag_ids:
        return {code: (pinned.get(code), version) for code, version in differ.items()}
    fingerprints = catalog.version_fingerprints(tag_ids[code] for code in differ if code in tag_ids)
    return {
        code: (pinned.get(code), version)
        for code, version in differ.items()
        if not catalog.same_computation(fingerprints, tag_ids.get(code), pinned.get(code), version)
    }


def _fail(audience_id: int, pending_version: int, message: str) -> None:
    Audience.objects.filter(pk=audience_id, pending_version=pending_version).update(
        is_calculating=False,
        errors_calculating=F("errors_calculating") + 1,
        last_error=message[:2000],
        last_error_at=timezone.now(),
    )


#: The kind of the claims refresh tasks hold (:mod:`tagportal.core.claims`).
CLAIM_KIND = "audiences.refresh"


def claim_of(audience_id: int, trigger: str, pending_version: int | None, task_id: str = "") -> tuple:
    """``(kind, key, subject, payload)`` of the claim of one requested refresh."""
    request = pending_version if pending_version is not None else f"task-{task_id}"
    return (
        CLAIM_KIND,
        f"audience:{audience_id}:{request}",
        f"audience:{audience_id}",
        {"audience_id": audience_id, "pending_version": pending_version, "trigger": str(trigger)},
    )


def abandon_claimed_refresh(claim, requeue: bool) -> None:
    """The reaper's handler of refresh claims: the refreshing worker died. The audience
    stops "refreshing" (the schedule is no longer held up), the loss is its last error
    and counts as a failure, and when ``requeue`` (and no newer refresh was requested)
    the refresh is requested again."""
    payload = claim.payload or {}
    message = _("The worker %(owner)s refreshing the audience was lost.") % {"owner": claim.owner}
    with transaction.atomic():
        audience = Audience.objects.select_for_update().filter(pk=payload.get("audience_id")).first()
        if audience is None:
            return
        pending = payload.get("pending_version")
        if pending is not None and audience.pending_version != pending:
            return  # a newer refresh was requested: it is queued or under way
        if not audience.is_calculating:
            return
        Audience.objects.filter(pk=audience.pk).update(
            is_calculating=False,
            errors_calculating=F("errors_calculating") + 1,
            last_error=message[:2000],
            last_error_at=timezone.now(),
        )
        log.warning("refresh of audience %s abandoned by %s", audience.pk, claim.owner)
        if requeue and audience.status == AudienceStatus.ACTIVE:
            enqueue_refresh(audience, payload.get("trigger") or RefreshTrigger.SCHEDULE)


def enqueue_refresh(audience: Audience, trigger: str = RefreshTrigger.SCHEDULE) -> int:
    """Request a refresh in the background: bump ``pending_version`` and, once the
    transaction commits, queue :func:`.tasks.refresh_audience` with that number (older
    queued requests then give way). Answers the pending version."""
    from . import tasks

    with transaction.atomic():
        Audience.objects.filter(pk=audience.pk).update(pending_version=F("pending_version") + 1)
        pending = Audience.objects.filter(pk=audience.pk).values_list("pending_version", flat=True).get()
    audience_id = audience.pk

    def send():
        tasks.refresh_audience.apply_async(args=(audience_id, str(trigger), pending), queue=QUEUE)

    transaction.on_commit(send, robust=True)
    return pending


def refresh(
    audience: Audience,
    trigger: str = RefreshTrigger.MANUAL,
    user=None,
    *,
    pending_version: int | None = None,
    raise_errors: bool | None = None,
) -> AudienceSnapshot | None:
    """Evaluate the audience now and store a snapshot; answers it, or None when the
    refresh did not happen.

    Without ``pending_version`` the refresh requests its own (superseding queued ones);
    with one (a queued task) it stops at once if a newer refresh was requested. The
    snapshot is written only if none was requested meanwhile. The tags' current results
    must be of the pinned versions: otherwise the audience waits for a re-pin.

    A manual refresh (or ``raise_errors``) raises what went wrong (``Conflict`` for an
    archived or lookalike audience or moved pins, ``ValidationError`` for an expression
    that no longer fits the tags); other triggers record it in ``last_error`` /
    ``errors_calculating`` and answer None. Each refresh counts one use of each tag it
    reads."""
    loud = trigger == RefreshTrigger.MANUAL if raise_errors is None else raise_errors
    now = timezone.now()
    with transaction.atomic():
        current = Audience.objects.select_for_update(of=("self",)).select_related("brand").get(pk=audience.pk)
        problem = _not_refreshable(current)
        if problem:
            if loud:
                raise Conflict(problem)
            return None
        if pending_version is None:
            pending_version = current.pending_version + 1
        elif current.pending_version > pending_version:
            log.info("refresh %s of audience %s superseded", pending_version, current.pk)
            return None
        Audience.objects.filter(pk=current.pk).update(
            pending_version=pending_version, is_calculating=True, calculation_started_at=now
        )
        current.pending_version = pending_version
    started = time.perf_counter()
    pause_point("audiences.refresh")  # test hook: the audience refreshing, nothing evaluated
    try:
        selection = _select(current.brand, current.expression)
        moved = _moved(current.pinned_versions, selection.tag_versions, selection.tag_ids)
        if moved:
            raise StalePins(moved)
    except StalePins as exc:
        _fail(current.pk, pending_version, str(exc))
        audience.refresh_from_db()
        if loud:
            raise Conflict(str(exc), stale=sorted(exc.moved)) from exc
        return None
    except ValidationError as exc:
        _fail(current.pk, pending_version, "; ".join(exc.messages))
        audience.refresh_from_db()
        if loud:
            raise
        return None
    except Exception as exc:
        _fail(current.pk, pending_version, f"{type(exc).__name__}: {exc}")
        raise
    with transaction.atomic():
        latest = (
            Audience.objects.select_for_update()
            .filter(pk=current.pk)
            .values_list("pending_version", flat=True)
        )
        if latest.get() != pending_version:
            log.info("refresh %s of audience %s gave way to a newer one", pending_version, current.pk)
            return None
        snapshot = take_snapshot(
            current,
            selection.members,
            selection.population,
            trigger=trigger,
            tag_versions=selection.tag_versions,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        pins = {**current.pinned_versions, **_current_pins(selection)}
        if pins != current.pinned_versions:  # newer versions computing the same: followed
            Audience.objects.filter(pk=current.pk).update(pinned_versions=pins)
    _record(selection.tag_ids.values(), _client(user, current), _usage_kind())
    audience.refresh_from_db()
    return snapshot


def due_for_refresh(now: dt.datetime | None = None) -> list[Audience]:
    """Active rule audiences whose schedule is due: never refreshed, or refreshed
    ``refresh_every_hours`` ago or more; after failures they wait a back-off, and one
    refreshing for longer than :data:`STUCK_AFTER` is taken to have hung."""
    now = now or timezone.now()
    candidates = Audience.objects.filter(
        status=AudienceStatus.ACTIVE, kind=AudienceKind.RULE, refresh_every_hours__isnull=False
    ).order_by("pk")
    due = []
    for audience in candidates:
        started = audience.calculation_started_at
        if audience.is_calculating and started is not None and now - started < STUCK_AFTER:
            continue
        if audience.errors_calculating and started is not None:
            wait = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** min(audience.errors_calculating - 1, 20))
            if now - started < wait:
                continue
        last = audience.last_calculated_at
        if last is None or now - last >= dt.timedelta(hours=audience.refresh_every_hours):
            due.append(audience)
    return due


def refresh_due(now: dt.datetime | None = None) -> int:
    """Queue a refresh of every audience due on its schedule; answers how many."""
    due = due_for_refresh(now)
    for audience in due:
        enqueue_refresh(audience, RefreshTrigger.SCHEDULE)
    return len(due)


def audiences_using(tag) -> QuerySet:
    """Active audiences that read ``tag`` (a Tag or its primary key)."""
    tag_id = getattr(tag, "pk", tag)
    return Audience.objects.filter(status=AudienceStatus.ACTIVE, tags=tag_id).distinct()


def on_results_updated(brand_id: int, tag_ids) -> int:
    """Queue a refresh (trigger "recompute") of the brand's active rule audiences that
    refresh on recompute and read one of ``tag_ids``; answers how many."""
    audiences = list(
        Audience.objects.filter(
            brand_id=brand_id,
            status=AudienceStatus.ACTIVE,
            kind=AudienceKind.RULE,
            refresh_on_recompute=True,
            tags__in=list(tag_ids),
        )
        .distinct()
        .order_by("pk")
    )
    for audience in audiences:
        enqueue_refresh(audience, RefreshTrigger.RECOMPUTE)
    return len(audiences)


def ensure_schedules(periodic_task_model=None, crontab_model=None) -> list[str]:
    """Create the audience periodic tasks (Beijing time) if missing; existing ones,
    possibly edited in the admin, are left alone. Answers the names created."""
    from tagportal.core.schedules import ensure_crontab_tasks

    return ensure_crontab_tasks(DEFAULT_SCHEDULES, periodic_task_model, crontab_model, queue=QUEUE)


# ---------------------------------------------------------------------------
# Pins


def _used_tags(audience: Audience) -> QuerySet:
    """The tags an audience reads: its ``tags``, and (lookalikes) those it is pinned to."""
    from tagportal.catalog.models import Tag

    return Tag.objects.filter(
        Q(audiences=audience) | Q(brand_id=audience.brand_id, code__in=list(audience.pinned_versions or {}))
    ).distinct()


def used_tag_ids(audience: Audience) -> list[int]:
    """The ids of the tags an audience reads (what a use of the audience uses)."""
    return list(_used_tags(audience).values_list("pk", flat=True))


def record_use(audience: Audience, user, kind) -> None:
    """Record one use of each tag the audience reads, of usage ``kind`` (e.g. a channel
    sync or a send from a higher app), by ``user`` (or the audience's owner)."""
    _record(used_tag_ids(audience), _client(user, audience), kind)


def rename_tag_codes(brand_id: int, mapping: dict[str, str], reason: str = "") -> int:
    """Make the brand's audiences read tags by their new codes (``{old: new}``, tags
    recoded by a restructure of the category tree): expression, its text and the pins
    (the recoded tag computes what it did, so no re-pin is asked). Answers how many."""
    changed = 0
    for audience in Audience.objects.select_for_update().filter(brand_id=brand_id).order_by("pk"):
        if not ex.tag_codes(audience.expression or {}) & set(mapping) and not set(
            audience.pinned_versions or {}
        ) & set(mapping):
            continue
        expression = ex.rename_tags(audience.expression or {}, mapping)
        audience.expression = expression
        audience.expression_text = ex.to_text(expression) if expression else audience.expression_text
        audience.pinned_versions = {mapping.get(k, k): v for k, v in (audience.pinned_versions or {}).items()}
        audience._change_reason = reason or _("Tag codes renamed")
        audience.save()
        changed += 1
    return changed


def stale_pins(audience: Audience) -> list[dict]:
    """Tags whose published version, or the version of their current result, is newer
    than the one the audience is pinned to and computes something else (another
    definition, values or value type; a new description is no reason to re-pin):
    ``[{code, name, pinned, current}]`` by code."""
    return stale_pins_many([audience])[audience.pk]


def stale_pins_many(audiences) -> dict[int, list[dict]]:
    """:func:`stale_pins` of several audiences in three queries (for lists)."""
    from tagportal.catalog import services as catalog
    from tagportal.catalog.models import Tag

    audiences = [a for a in audiences if a.pk is not None]
    out: dict[int, list[dict]] = {a.pk: [] for a in audiences}
    if not audiences:
        return out
    linked: dict[int, set[int]] = {a.pk: set() for a in audiences}
    for audience_id, tag_id in Audience.tags.through.objects.filter(audience_id__in=list(out)).values_list(
        "audience_id", "tag_id"
    ):
        linked[audience_id].add(tag_id)
    codes = {code for a in audiences for code in (a.pinned_versions or {})}
    brands = {a.brand_id for a in audiences}
    wanted = Q(pk__in={t for ids in linked.values() for t in ids}) | Q(brand_id__in=brands, code__in=codes)
    rows = Tag.objects.filter(wanted).values_list(
        "pk", "brand_id", "code", "name", "published_version", "computation__version"
    )
    tags = sorted(rows, key=lambda row: row[2])
    fingerprints = catalog.version_fingerprints(row[0] for row in tags) if tags else {}
    for audience in audiences:
        pinned = audience.pinned_versions or {}
        for pk, brand_id, code, name, published, computed in tags:
            if pk not in linked[audience.pk] and not (brand_id == audience.brand_id and code in pinned):
                continue
            current = max((v for v in (published, computed) if v is not None), default=None)
            was = pinned.get(code)
            if current is None or (was is not None and current <= was):
                continue
            if not catalog.same_computation(fingerprints, pk, was, current):
                out[audience.pk].append({"code": code, "name": name, "pinned": was, "current": current})
    return out


def _audience_url(audience: Audience) -> str:
    for name in ("audiences:detail", "audiences:audience", "admin:audiences_audience_change"):
        try:
            return reverse(name, args=[audience.pk])
        except NoReverseMatch:
            continue
    return ""  # pragma: no cover - the admin is always there


def _notify(users, subject: str, body: str, audience: Audience) -> None:
    notifications.notify(users, subject, body, topic=audience, url=_audience_url(audience))


def _apply_repin(user, audience_id: int, reason: str) -> Audience:
    started = time.perf_counter()
    with transaction.atomic():
        current = Audience.objects.select_for_update(of=("self",)).select_related("brand").get(pk=audience_id)
        selection = _select(current.brand, current.expression)
        if not _moved(current.pinned_versions, _current_pins(selection), selection.tag_ids):
            stale = ", ".join(s["code"] for s in stale_pins(current))
            raise Conflict(
                _("Nothing to re-pin yet: the newer versions of %(tags)s are published but not computed.")
                % {"tags": stale}
                if stale
                else _("The audience is already pinned to the current versions of its tags.")
            )
        old = current.pinned_versions
        _pin(current, selection)
        current.repin_requested_by = None
        current.repin_requested_at = None
        current._change_reason = reason or _("Re-pinned: %(versions)s") % {
            "versions": ", ".join(
                f"{code} {old.get(code)}→{version}"
                for code, version in sorted(current.pinned_versions.items())
                if old.get(code) != version
            )
        }
        current._history_user = user
        current.save()
        current.tags.set(list(selection.tag_ids.values()))
        _supersede(current)
        take_snapshot(
            current,
            selection.members,
            selection.population,
            trigger=RefreshTrigger.REPIN,
            tag_versions=selection.tag_versions,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
    _record(selection.tag_ids.values(), _client(user, current), _usage_kind())
    current.refresh_from_db()
    return current


def repin(user, audience: Audience) -> Audience:
    """Pin the audience to its tags' current result versions and refresh it (trigger
    "repin"). An audience live in a journey is only marked as waiting for a data
    steward's approval (:func:`approve_repin`), whose stewards are notified; it is
    answered unchanged otherwise."""
    _check_change(user, audience)
    problem = _not_refreshable(audience)
    if problem:
        raise Conflict(problem)
    if not audience.is_live:
        return _apply_repin(user, audience.pk, "")
    with transaction.atomic():
        current = (
            Audience.objects.select_for_update(of=("self",))
            .select_related("business_line")
            .get(pk=audience.pk)
        )
        if current.repin_requested_at is not None:
            raise Conflict(_("A re-pin of this audience is already waiting for approval."))
        stale = stale_pins(current)
        if not stale:
            raise Conflict(_("The audience is already pinned to the current versions of its tags."))
        current.repin_requested_by = user
        current.repin_requested_at = timezone.now()
        current._change_reason = _("Re-pin requested")
        current._history_user = user
        current.save()
        stewards = [
            u
            for u in reviewers_of(current.business_line, exclude=user)
            if u.has_perm("audiences.approve_repin")
        ]
        tags = ", ".join(f"{s['code']} {s['pinned']}→{s['current']}" for s in stale)
        _notify(
            stewards,
            _("Re-pin requested: %(name)s") % {"name": current.name},
            _(
                "%(user)s asks to re-pin the live audience “%(name)s” (%(brand)s) to newer tag versions: %(tags)s."
            )
            % {"user": user, "name": current.name, "brand": current.brand, "tags": tags},
            current,
        )
    return current


def may_approve_repin(user, audience: Audience) -> bool:
    """A data steward of the audience's business line (``audiences.approve_repin`` and
    the right to review there), who did not request the re-pin."""
    if not (user and user.is_authenticated and user.has_perm("audiences.approve_repin")):
        return False
    if audience.repin_requested_by_id is not None and audience.repin_requested_by_id == user.pk:
        return False
    return may(user, audience, "review", check_model_permission=False)


def approve_repin(user, audience: Audience) -> Audience:
    """Apply a requested re-pin of a live audience; the requester is told."""
    if audience.repin_requested_at is None:
        raise Conflict(_("No re-pin of this audience is waiting for approval."))
    if audience.repin_requested_by_id is not None and audience.repin_requested_by_id == user.pk:
        raise PermissionDenied(_("You may not approve your own re-pin request."))
    if not may_approve_repin(user, audience):
        raise PermissionDenied(_("You may not approve re-pinning this audience."))
    requester = audience.repin_requested_by
    done = _apply_repin(user, audience.pk, _("Re-pin approved by %(user)s") % {"user": user})
    if requester is not None:
        _notify(
            [requester],
            _("Re-pin approved: %(name)s") % {"name": done.name},
            _("%(user)s approved re-pinning “%(name)s”; it now has %(size)s people.")
            % {"user": user, "name": done.name, "size": done.size},
            done,
        )
    return done


# ---------------------------------------------------------------------------
# Export


def export_rows(user, audience: Audience, identity_type: str | None = None) -> Iterator[list]:
    """The members at the latest snapshot as rows, a header first: OneIDs
    (``audiences.export_audience``), or each member's identities of ``identity_type``
    (``audiences.export_identities`` too; values in clear only with ``core.view_pii``,
    phones never). Permissions are checked and the export is counted as a use of the
    audience's tags before the first row."""
    from tagportal.profiles import pii
    from tagportal.profiles.choices import HASHED_ONLY_TYPES, IdentityType
    from tagportal.profiles.models import Identity

    if not (may(user, audience, "view") and user.has_perm("audiences.export_audience")):
        raise PermissionDenied(_("You may not export this audience."))
    if identity_type:
        if identity_type not in IdentityType.values:
            raise ValidationError(
                {
                    "identity_type": [
                        _("Unknown identity type “%(type)s”; use one of %(types)s.")
                        % {"type": identity_type, "types": ", ".join(IdentityType.values)}
                    ]
                }
            )
        if not user.has_perm("audiences.export_identities"):
            raise PermissionDenied(_("You may not export audience members' identities."))
    people = members(audience)
    _record(_used_tags(audience).values_list("pk", flat=True), _client(user, audience), _export_kind())
    if not identity_type:
        return _oneid_rows(people)
    clear = pii.can_view_pii(user) and identity_type not in HASHED_ONLY_TYPES
    identities = (
        Identity.objects.filter(brand_id=audience.brand_id, type=identity_type)
        .order_by("customer__oneid", "app", "pk")
        .values_list("customer__oneid", "app", "value", "masked")
    )
    return _identity_rows(people, identity_type, identities, clear)


def _export_kind():
    from tagportal.usage.choices import UsageKind

    return UsageKind.EXPORT


def _oneid_rows(people: BitMap) -> Iterator[list]:
    yield ["oneid"]
    for oneid in people:
        yield [oneid]


def _identity_rows(people: BitMap, identity_type: str, identities, clear: bool) -> Iterator[list]:
    yield ["oneid", "type", "app", "value"]
    for oneid, app, value, masked in identities.iterator(chunk_size=5000):
        if oneid in people:
            yield [oneid, identity_type, app, value if clear and value else masked]


def export_csv(user, audience: Audience, identity_type: str | None = None) -> bytes:
    """:func:`export_rows` as a UTF-8 CSV with a byte order mark (Excel reads Chinese)."""
    return b"".join(export_csv_chunks(user, audience, identity_type))


def export_csv_chunks(user, audience: Audience, identity_type: str | None = None) -> Iterator[bytes]:
    """:func:`export_csv` a piece at a time, to stream: permissions are checked (and the
    export counted) now, the rows read as the pieces are sent."""
    rows = iter(export_rows(user, audience, identity_type))
    return spreadsheets.csv_chunks(next(rows), rows)
