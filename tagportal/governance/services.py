"""Change requests: propose, submit, review (four eyes), apply. The only way a tag is
published, changed, deprecated, merged, retired or restored.

Views, the API, bulk uploads and commands call these functions; each is atomic,
checks who may do it, records an audit event and notifies the people concerned.

Requests to publish a held run of an algorithm model (kind ``model_run``) are made by
:mod:`.model_runs` only; they are reviewed and applied here like the others.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog import services as catalog
from tagportal.catalog.choices import TagStatus
from tagportal.catalog.history import snapshot_changes
from tagportal.catalog.models import BusinessLine, Category, Region, Tag, TagVersion
from tagportal.core.exceptions import Conflict
from tagportal.core.permissions import may
from tagportal.core.roles import reviewers_of
from tagportal.notifications import services as notifications

from . import model_runs
from .choices import REQUEST_TRANSITIONS, AuditAction, ChangeKind, RequestState
from .models import AuditEvent, ChangeItem, ChangeRequest, Comment

log = logging.getLogger(__name__)

#: Fields an update may change (``regions`` as codes, ``category`` as id, ``owner`` as username).
CHANGEABLE_FIELDS = (
    "code", "name", "name_en", "description", "category", "regions", "owner", "kind", "value_type",
    "values", "unit", "refresh_mode", "schedule", "definition",
)  # fmt: skip
#: Which tag statuses each kind of change starts from.
KIND_FROM = {
    ChangeKind.CREATE: {TagStatus.DRAFT},
    ChangeKind.UPDATE: {TagStatus.PUBLISHED},
    ChangeKind.DEPRECATE: {TagStatus.PUBLISHED},
    ChangeKind.RETIRE: {TagStatus.PUBLISHED, TagStatus.DEPRECATED},
    ChangeKind.RESTORE: {TagStatus.DEPRECATED, TagStatus.RETIRED},
    ChangeKind.MERGE: {TagStatus.PUBLISHED, TagStatus.DEPRECATED},
    ChangeKind.RESTRUCTURE: {TagStatus.DRAFT, TagStatus.IN_REVIEW, TagStatus.PUBLISHED, TagStatus.DEPRECATED},
}
#: Kinds that take a tag away from the ones reading it.
REMOVING_KINDS = {ChangeKind.DEPRECATE, ChangeKind.RETIRE, ChangeKind.MERGE}


class StaleChangeRequest(Conflict):
    """The request was made on a version that is no longer the published one."""


class OutOfDateChangeRequest(StaleChangeRequest):
    """An action refused because a version newer than the one the request was made on
    has been published: nothing was recorded."""


class DependentsNeedConfirmation(Conflict):
    """The change removes a tag that other tags read; the proposer must confirm."""


class InvalidTransition(Conflict):
    """The request is not in a state that allows this action."""


@dataclass
class ItemSpec:
    """A proposed change to one tag, as plain data."""

    kind: str
    tag: Tag
    changes: dict = field(default_factory=dict)
    merge_target: Tag | None = None
    rollback_to: int | None = None


# ---------------------------------------------------------------------------
# Validation and diffs


def _candidate(tag: Tag, changes: dict) -> tuple[Tag, list[str] | None]:
    """An unsaved copy of ``tag`` with ``changes`` applied, and its region codes."""
    candidate = copy.copy(tag)
    candidate._state = copy.copy(tag._state)
    regions = None
    for name, value in changes.items():
        if name == "regions":
            regions = list(value)
        elif name == "category":
            try:
                candidate.category = Category.objects.get(pk=value)
            except (Category.DoesNotExist, ValueError, TypeError) as exc:
                raise ValidationError(
                    {"changes.category": _("Unknown category %(value)r.") % {"value": value}}
                ) from exc
        elif name == "owner":
            owner = get_user_model().objects.filter(username=value, is_active=True).first() if value else None
            if value and owner is None:
                raise ValidationError({"changes.owner": _("Unknown owner %(value)r.") % {"value": value}})
            candidate.owner = owner
        else:
            setattr(candidate, name, value)
    if regions is not None:
        known = set(Region.objects.filter(code__in=regions).values_list("code", flat=True))
        unknown = sorted(set(regions) - known)
        if unknown:
            raise ValidationError(
                {"changes.regions": _("Unknown region(s): %(codes)s.") % {"codes": ", ".join(unknown)}}
            )
    return candidate, regions


def _check_changes(tag: Tag, changes: dict) -> None:
    if not isinstance(changes, dict) or not changes:
        raise ValidationError({"changes": _("Say what changes: an object of field names and new values.")})
    unknown = sorted(set(changes) - set(CHANGEABLE_FIELDS))
    if unknown:
        raise ValidationError(
            {
                "changes": _("These fields cannot be changed here: %(fields)s. Changeable: %(ok)s.")
                % {"fields": ", ".join(unknown), "ok": ", ".join(CHANGEABLE_FIELDS)}
            }
        )
    candidate, _regions = _candidate(tag, changes)
    try:
        candidate.full_clean()
    except ValidationError as exc:
        raise ValidationError(
            {
                f"changes.{key}" if key != "__all__" else "changes": value
                for key, value in exc.message_dict.items()
            }
        ) from exc


def rollback_changes(tag: Tag, version: int) -> dict:
    """The changes that bring ``tag`` back to the content of its published ``version``."""
    snapshot = TagVersion.objects.filter(tag=tag, version=version).values_list("snapshot", flat=True).first()
    if snapshot is None:
        raise ValidationError({"rollback_to": _("The tag has no published version %(n)s.") % {"n": version}})
    if version == tag.published_version:
        raise ValidationError({"rollback_to": _("Version %(n)s is the current version.") % {"n": version}})
    fields = (
        "code", "name", "name_en", "description", "kind", "value_type", "values", "unit", "refresh_mode",
        "schedule", "definition", "regions", "owner",
    )  # fmt: skip
    changes = {key: snapshot[key] for key in fields if key in snapshot}
    if snapshot.get("category_id"):
        changes["category"] = snapshot["category_id"]
    current = catalog.tag_snapshot(tag)
    current["category"] = tag.category_id
    return {key: value for key, value in changes.items() if current.get(key) != value}


def _published_snapshot(tag: Tag) -> dict:
    if tag.published_version:
        version = TagVersion.objects.filter(tag=tag, version=tag.published_version).first()
        if version is not None:
            return version.snapshot
    return {}


def snapshot_diff(before: dict, after: dict) -> list[dict]:
    """Field-by-field differences between two tag snapshots (only the changed fields),
    with a line diff for long values such as the rule definition: the rows a change
    item keeps as its ``diff``."""
    return [change.as_dict(with_changed=False) for change in snapshot_changes(before, after, Tag.field_label)]


def item_diff(item: ChangeItem | ItemSpec) -> list[dict]:
    if item.kind == ChangeKind.RESTRUCTURE:
        return list(getattr(item, "diff", None) or [])  # made by the restructure's preview
    tag = item.tag
    before = _published_snapshot(tag) if item.kind != ChangeKind.CREATE else {}
    if not before and item.kind != ChangeKind.CREATE:
        before = catalog.tag_snapshot(tag)
    if item.kind == ChangeKind.UPDATE:
        candidate, regions = _candidate(tag, item.changes)
        after = catalog.tag_snapshot(candidate, regions=regions)
    elif item.kind == ChangeKind.CREATE:
        after = catalog.tag_snapshot(tag)
    else:
        status = {
            ChangeKind.DEPRECATE: TagStatus.DEPRECATED,
            ChangeKind.RETIRE: TagStatus.RETIRED,
            ChangeKind.MERGE: TagStatus.RETIRED,
            ChangeKind.RESTORE: TagStatus.PUBLISHED,
        }[item.kind]
        before = {"status": str(TagStatus(tag.status).label)}
        after = {"status": str(TagStatus(status).label)}
        if item.kind == ChangeKind.MERGE and item.merge_target is not None:
            after["merged_into"] = item.merge_target.code
    return snapshot_diff(before, after)


def _dependents(tag: Tag) -> list[dict]:
    from tagportal.lineage.services import tag_dependents

    return [
        {"id": t.pk, "code": t.code, "name": t.name, "status": t.status}
        for t in tag_dependents(tag)
        if t.status != TagStatus.RETIRED
    ]


def _validate_item(user, spec: ItemSpec) -> None:
    tag = spec.tag
    if spec.kind not in ChangeKind.values:
        raise ValidationError({"kind": _("Unknown kind of change %(kind)r.") % {"kind": spec.kind}})
    if spec.kind == ChangeKind.MODEL_RUN:
        raise ValidationError(
            {"kind": _("Publishing a model run is proposed by the model registry only, when a run is held.")}
        )
    if user is not None and not may(user, tag, "change"):
        raise PermissionDenied(_("You may not propose changes to the tag “%(code)s”.") % {"code": tag.code})
    if spec.kind == ChangeKind.RESTRUCTURE:
        return  # checked as a whole by .restructure
    allowed = KIND_FROM[ChangeKind(spec.kind)]
    if tag.status not in allowed:
        raise ValidationError(
            {
                "kind": _("A %(status)s tag cannot be proposed for “%(kind)s” (it must be %(allowed)s).")
                % {
                    "status": tag.get_status_display(),
                    "kind": ChangeKind(spec.kind).label,
                    "allowed": " / ".join(str(TagStatus(s).label) for s in sorted(allowed)),
                }
            }
        )
    if spec.kind == ChangeKind.UPDATE:
        if spec.rollback_to is not None:
            spec.changes = rollback_changes(tag, spec.rollback_to)
            if not spec.changes:
                raise ValidationError({"rollback_to": _("Nothing differs from that version.")})
        _check_changes(tag, spec.changes)
    elif spec.changes:
        raise ValidationError({"changes": _("Only updates carry changes.")})
    if spec.kind == ChangeKind.CREATE:
        candidate = copy.copy(tag)
        candidate.status, candidate.published_version = TagStatus.PUBLISHED, 1
        try:
            candidate.full_clean()
        except ValidationError as exc:
            raise ValidationError({f"tag.{k}": v for k, v in exc.message_dict.items()}) from exc
    if spec.kind == ChangeKind.MERGE:
        target = spec.merge_target
        if target is None:
            raise ValidationError({"merge_target": _("Say which tag to merge into.")})
        if user is not None and not may(user, target, "view"):
            raise ValidationError({"merge_target": _("Unknown tag.")})
        if target.pk == tag.pk or target.brand_id != tag.brand_id or target.status != TagStatus.PUBLISHED:
            raise ValidationError({"merge_target": _("Merge into another published tag of the same brand.")})
    elif spec.merge_target is not None:
        raise ValidationError({"merge_target": _("Only merges have a target.")})
    if spec.kind == ChangeKind.RESTORE and tag.aliases_as_source.exists():
        raise ValidationError(
            {"kind": _("A tag merged into another cannot be restored; restore the target instead.")}
        )


# ---------------------------------------------------------------------------
# Proposing


#: States in which a request is still open: it can go stale while it waits.
OPEN_STATES = (
    RequestState.DRAFT,
    RequestState.SUBMITTED,
    RequestState.CHANGES_REQUESTED,
    RequestState.APPROVED,
)
#: States that close a request without applying it: still allowed once it is stale.
CLOSING_STATES = (RequestState.REJECTED, RequestState.WITHDRAWN)


def item_is_stale(item: ChangeItem) -> bool:
    """Whether the change was made on a version of its tag that is no longer the
    published one (a create has no version to go stale); a ``model_run`` change: whether
    its run can no longer be published (:func:`.model_runs.refusal`)."""
    if item.kind == ChangeKind.MODEL_RUN:
        return bool(model_runs.refusal(item))
    return item.kind != ChangeKind.CREATE and item.tag.published_version != item.base_version


def stale_changes(cr: ChangeRequest, items=None) -> list[ChangeItem]:
    """The changes of an open request made on a version that is no longer the published
    one: the request is out of date (an applied or closed request never is). ``items``
    are the request's changes with their tags, if already read."""
    if cr.state not in OPEN_STATES:
        return []
    if items is None:
        items = cr.items.select_related("tag").order_by("position", "pk")
    runs: dict[int | None, bool] = {}  # the changes of a model run share its answer
    stale = []
    for item in items:
        if item.kind == ChangeKind.MODEL_RUN:
            if item.model_run_id not in runs:
                runs[item.model_run_id] = item_is_stale(item)
            if runs[item.model_run_id]:
                stale.append(item)
        elif item_is_stale(item):
            stale.append(item)
    return stale


def stale_conflict(cr: ChangeRequest, stale: list[ChangeItem]) -> OutOfDateChangeRequest:
    """What refuses an action on an out-of-date request (a 409 in the API)."""
    first = stale[0]
    if first.kind == ChangeKind.MODEL_RUN:
        return OutOfDateChangeRequest(
            _(
                "%(why)s The request is out of date: it cannot be approved or applied, and nothing "
                "was recorded. Reject it."
            )
            % {"why": model_runs.refusal(first)},
            run=first.model_run_id,
            stale=[{"tag": item.tag.code, "run": item.model_run_id} for item in stale],
        )
    return OutOfDateChangeRequest(
        _(
            "The request was made on version %(base)s of “%(code)s”, but version %(current)s has been "
            "published since: the request is out of date. It cannot be approved, sent back for changes "
            "or applied, and nothing was recorded. Reject or withdraw it, and propose the change again "
            "on the current version."
        )
        % {"base": first.base_version, "code": first.tag.code, "current": first.tag.published_version},
        tag=first.tag.code,
        base_version=first.base_version,
        current_version=first.tag.published_version,
        stale=[
            {
                "tag": item.tag.code,
                "base_version": item.base_version,
                "current_version": item.tag.published_version,
            }
            for item in stale
        ],
    )


def _refuse_if_stale(cr: ChangeRequest) -> None:
    stale = stale_changes(cr)
    if stale:
        raise stale_conflict(cr, stale)


def _ensure_transition(cr: ChangeRequest, state: str) -> None:
    if state in CLOSING_STATES and cr.state == RequestState.APPROVED and stale_changes(cr):
        return  # an approved request gone stale can only be closed
    if state not in REQUEST_TRANSITIONS[RequestState(cr.state)]:
        raise InvalidTransition(
            _("A change request that is “%(current)s” cannot become “%(new)s”.")
            % {"current": cr.get_state_display(), "new": RequestState(state).label},
            state=cr.state,
        )


def _audit(cr: ChangeRequest | None, actor, action: str, tag: Tag | None = None, **detail) -> AuditEvent:
    business_line_id = cr.business_line_id if cr is not None else tag.business_line_id
    brand_id = (tag.brand_id if tag is not None else None) or (cr.brand_id if cr is not None else None)
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        change_request=cr,
        tag=tag,
        business_line_id=business_line_id,
        brand_id=brand_id,
        detail=detail,
    )


def _default_title(specs: list[ItemSpec]) -> str:
    if len(specs) == 1:
        spec = specs[0]
        if spec.rollback_to:
            return _("Roll back %(code)s to version %(n)s") % {"code": spec.tag.code, "n": spec.rollback_to}
        return f"{ChangeKind(spec.kind).label}: {spec.tag.name} ({spec.tag.code})"
    return _("%(n)s tag changes") % {"n": len(specs)}


@transaction.atomic
def propose(
    user,
    specs: list[ItemSpec],
    *,
    title: str = "",
    description: str = "",
    submit_now: bool = False,
    confirm_dependents: bool = False,
    is_bulk: bool = False,
    source_file: str = "",
) -> ChangeRequest:
    """Create a change request (a draft, or submitted at once) for one or many tags."""
    if user is None or not user.has_perm("governance.add_changerequest"):
        raise PermissionDenied(_("You may not propose changes."))
    if not specs:
        raise ValidationError({"items": _("A change request needs at least one change.")})
    lines = {spec.tag.business_line_id for spec in specs}
    if len(lines) > 1:
        raise ValidationError({"items": _("One change request covers one business line; split the changes.")})
    seen = set()
    for index, spec in enumerate(specs):
        if spec.tag.pk in seen:
            raise ValidationError(
                {f"items[{index}].tag": _("The tag “%(code)s” appears twice.") % {"code": spec.tag.code}}
            )
        seen.add(spec.tag.pk)
        try:
            _validate_item(user, spec)
        except ValidationError as exc:
            if len(specs) == 1:
                raise
            raise ValidationError({f"items[{index}].{k}": v for k, v in exc.message_dict.items()}) from exc
    brands = {spec.tag.brand_id for spec in specs}
    cr = ChangeRequest(
        title=title or _default_title(specs),
        description=description,
        business_line_id=lines.pop(),
        brand_id=brands.pop() if len(brands) == 1 else None,
        proposer=user,
        confirm_dependents=confirm_dependents,
        is_bulk=is_bulk,
        source_file=source_file,
    )
    cr._change_reason = _("Proposed")
    cr.save()
    for position, spec in enumerate(specs):
        ChangeItem.objects.create(
            change_request=cr,
            position=position,
            kind=spec.kind,
            tag=spec.tag,
            base_version=spec.tag.published_version if spec.kind != ChangeKind.CREATE else None,
            changes=spec.changes,
            merge_target=spec.merge_target,
            rollback_to=spec.rollback_to,
            diff=item_diff(spec),
            dependents=_dependents(spec.tag) if spec.kind in REMOVING_KINDS else [],
        )
    _audit(cr, user, AuditAction.PROPOSED, items=len(specs))
    if submit_now:
        cr = submit(user, cr, confirm_dependents=confirm_dependents)
    return cr


@transaction.atomic
def replace_items(
    user, cr: ChangeRequest, specs: list[ItemSpec], title: str | None = None, description: str | None = None
) -> ChangeRequest:
    """The proposer rewrites a draft (or a request sent back for changes)."""
    cr = ChangeRequest.objects.select_for_update().get(pk=cr.pk)
    if cr.proposer_id != user.pk:
        raise PermissionDenied(_("Only the proposer edits a change request."))
    if cr.state not in (RequestState.DRAFT, RequestState.CHANGES_REQUESTED):
        raise InvalidTransition(
            _("Only drafts and requests sent back for changes can be edited."), state=cr.state
        )
    for index, spec in enumerate(specs):
        try:
            _validate_item(user, spec)
        except ValidationError as exc:
            raise ValidationError({f"items[{index}].{k}": v for k, v in exc.message_dict.items()}) from exc
    if {s.tag.business_line_id for s in specs} != {cr.business_line_id}:
        raise ValidationError({"items": _("The changes must stay in the business line of the request.")})
    cr.items.all().delete()
    for position, spec in enumerate(specs):
        ChangeItem.objects.create(
            change_request=cr, position=position, kind=spec.kind, tag=spec.tag,
            base_version=spec.tag.published_version if spec.kind != ChangeKind.CREATE else None,
            changes=spec.changes, merge_target=spec.merge_target, rollback_to=spec.rollback_to,
            diff=item_diff(spec), dependents=_dependents(spec.tag) if spec.kind in REMOVING_KINDS else [],
        )  # fmt: skip
    if title:
        cr.title = title
    if description is not None:
        cr.description = description
    cr._change_reason = _("Edited")
    cr.save()
    return cr


def _set_create_drafts(cr: ChangeRequest, status: str, user, reason: str) -> None:
    for item in cr.items.filter(kind=ChangeKind.CREATE).select_related("tag"):
        if item.tag.status != status:
            catalog.set_status(item.tag, status, user=user, reason=reason)


@transaction.atomic
def submit(user, cr: ChangeRequest, confirm_dependents: bool | None = None) -> ChangeRequest:
    """Send a request for review. Changes that remove tags others read need confirming."""
    cr = ChangeRequest.objects.select_for_update().get(pk=cr.pk)
    if cr.proposer_id != user.pk:
        raise PermissionDenied(_("Only the proposer submits a change request."))
    _ensure_transition(cr, RequestState.SUBMITTED)
    if confirm_dependents is not None:
        cr.confirm_dependents = confirm_dependents
    dependents = {}
    for item in cr.items.select_related("tag", "merge_target"):
        if item.kind != ChangeKind.CREATE and item.tag.published_version != item.base_version:
            raise StaleChangeRequest(
                _(
                    "The request was made on version %(base)s of “%(code)s”, but version %(current)s "
                    "has been published since. Edit the request on the current version."
                )
                % {"base": item.base_version, "code": item.tag.code, "current": item.tag.published_version},
                tag=item.tag.code,
                base_version=item.base_version,
                current_version=item.tag.published_version,
            )
        _validate_item(user, item)  # the tag may have moved on since the draft
        item.diff = item_diff(item)
        item.dependents = _dependents(item.tag) if item.kind in REMOVING_KINDS else []
        item.save(update_fields=["diff", "dependents"])
        if item.dependents:
            dependents[item.tag.code] = item.dependents
    if dependents and not cr.confirm_dependents:
        raise DependentsNeedConfirmation(
            _("Other tags read what this request removes. Review them and confirm to submit."),
            dependents=dependents,
        )
    _set_create_drafts(cr, TagStatus.IN_REVIEW, user, _("In review: change request #%(n)s") % {"n": cr.pk})
    cr.state = RequestState.SUBMITTED
    cr.submitted_at = timezone.now()
    cr._change_reason = _("Submitted")
    cr.save()
    _audit(cr, user, AuditAction.SUBMITTED)
    ask_for_review(cr, user)
    return cr


def ask_for_review(cr: ChangeRequest, user) -> list:
    """Tell the stewards of the request's business line (but ``user``, who submitted it)
    that it waits for their review."""
    return notify(
        reviewers_of(cr.business_line, exclude=user),
        _("Review requested: %(title)s") % {"title": cr.title},
        _("%(user)s asks you to review change request #%(n)s (%(count)s change(s)).")
        % {"user": user, "n": cr.pk, "count": cr.items.count()},
        cr,
    )


@transaction.atomic
def withdraw(user, cr: ChangeRequest) -> ChangeRequest:
    cr = ChangeRequest.objects.select_for_update().get(pk=cr.pk)
    if cr.proposer_id != user.pk:
        raise PermissionDenied(_("Only the proposer withdraws a change request."))
    _ensure_transition(cr, RequestState.WITHDRAWN)
    _set_create_drafts(cr, TagStatus.DRAFT, user, _("Change request #%(n)s withdrawn") % {"n": cr.pk})
    cr.state = RequestState.WITHDRAWN
    cr._change_reason = _("Withdrawn")
    cr.save()
    _audit(cr, user, AuditAction.WITHDRAWN)
    return cr


# ---------------------------------------------------------------------------
# Reviewing


def reviewable_business_lines(user):
    """The business lines whose changes ``user`` may approve."""
    if user is None or not user.is_authenticated or not user.has_perm("governance.review_changerequest"):
        return BusinessLine.objects.none()
    return BusinessLine.objects.restrict(user, "review")


def may_review(user, cr: ChangeRequest) -> bool:
    return reviewable_business_lines(user).filter(pk=cr.business_line_id).exists()


def review_queue(user):
    """Requests waiting for ``user``'s review: submitted, in a business line they steward,
    proposed by someone else."""
    return (
        ChangeRequest.objects.in_review()
        .filter(business_line__in=reviewable_business_lines(user))
        .exclude(proposer=user)
        .select_related("business_line", "brand", "proposer")
        .prefetch_related("items__tag")
    )


def _check_reviewer(user, cr: ChangeRequest) -> None:
    if cr.proposer_id == user.pk:
        raise PermissionDenied(_("Four eyes: nobody reviews their own change request, admins included."))
    if not may_review(user, cr):
        raise PermissionDenied(
            _("Only a data steward of the business line “%(bl)s” may review this request.")
            % {"bl": cr.business_line}
        )


@transaction.atomic
def approve(user, cr: ChangeRequest, reason: str = "", apply_now: bool = False) -> ChangeRequest:
    """Approve a submitted request; with ``apply_now`` also apply it, all in one: when
    applying fails, the approval is not recorded either. An out-of-date request (made on
    a version no longer published) is refused with nothing recorded."""
    cr = _approve(user, cr, reason)
    if apply_now:
        cr = apply(user, cr)
    return cr


@transaction.atomic
def _approve(user, cr: ChangeRequest, reason: str) -> ChangeRequest:
    cr = ChangeRequest.objects.select_for_update().get(pk=cr.pk)
    _check_reviewer(user, cr)
    _ensure_transition(cr, RequestState.APPROVED)
    _refuse_if_stale(cr)
    cr.state = RequestState.APPROVED
    cr.reviewer = user
    cr.decision_reason = reason
    cr.decided_at = timezone.now()
    cr._change_reason = _("Approved")
    cr.save()
    _audit(cr, user, AuditAction.APPROVED, reason=reason)
    notify(
        [cr.proposer],
        _("Approved: %(title)s") % {"title": cr.title},
        _("%(user)s approved change request #%(n)s. %(reason)s")
        % {"user": user, "n": cr.pk, "reason": reason},
        cr,
    )
    return cr


@transaction.atomic
def reject(user, cr: ChangeRequest, reason: str) -> ChangeRequest:
    return _send_back(user, cr, reason, RequestState.REJECTED, AuditAction.REJECTED, _("Rejected"))


@transaction.atomic
def request_changes(user, cr: ChangeRequest, reason: str) -> ChangeRequest:
    return _send_back(
        user,
        cr,
        reason,
        RequestState.CHANGES_REQUESTED,
        AuditAction.CHANGES_REQUESTED,
        _("Changes requested"),
    )


def _send_back(user, cr, reason, state, action, label) -> ChangeRequest:
    cr = ChangeRequest.objects.select_for_update().get(pk=cr.pk)
    _check_reviewer(user, cr)
    if not (reason or "").strip():
        raise ValidationError({"reason": _("Say why, so the proposer knows what to do.")})
    _ensure_transition(cr, state)
    if state == RequestState.CHANGES_REQUESTED and cr.items.filter(kind=ChangeKind.MODEL_RUN).exists():
        raise InvalidTransition(
            _(
                "A request to publish a model run cannot be sent back for changes: nobody edits it. "
                "Approve or reject it."
            ),
            state=cr.state,
        )
    if state not in CLOSING_STATES:
        _refuse_if_stale(cr)  # sending back an out-of-date request: reject it instead
    _set_create_drafts(cr, TagStatus.DRAFT, user, f"{label}: #{cr.pk}")
    cr.state = state
    cr.reviewer = user
    cr.decision_reason = reason
    cr.decided_at = timezone.now()
    cr._change_reason = label
    cr.save()
    Comment.objects.create(change_request=cr, author=user, text=reason)
    _audit(cr, user, action, reason=reason)
    notify(
        [cr.proposer],
        f"{label}: {cr.title}",
        _("%(user)s: %(reason)s") % {"user": user, "reason": reason},
        cr,
    )
    return cr


@transaction.atomic
def apply(user, cr: ChangeRequest) -> ChangeRequest:
    """Carry out an approved request, all of it or nothing. A change made on a version
    that is no longer the published one is refused (409): propose it again."""
    cr = ChangeRequest.objects.select_for_update().get(pk=cr.pk)
    if not (
        user.pk in (cr.proposer_id, cr.reviewer_id) or (user.pk != cr.proposer_id and may_review(user, cr))
    ):
        raise PermissionDenied(_("Only the proposer or a steward of the business line applies a request."))
    _ensure_transition(cr, RequestState.APPLIED)
    _refuse_if_stale(cr)
    reason = _("Change request #%(n)s: %(title)s") % {"n": cr.pk, "title": cr.title}
    items = list(cr.items.select_related("tag", "merge_target").order_by("position", "pk"))
    if any(item.kind == ChangeKind.MODEL_RUN for item in items):
        model_runs.publish(user, cr, items)  # the tags' values change, not their definitions
    elif cr.restructure:
        from . import restructure

        restructure.apply(user, cr, items, reason)
    else:
        _apply_tag_changes(user, cr, items, reason)
    cr.state = RequestState.APPLIED
    cr.applied_at = timezone.now()
    cr._change_reason = _("Applied")
    cr.save()
    notify(
        [u for u in (cr.proposer, cr.reviewer) if u is not None and u.pk != user.pk],
        _("Applied: %(title)s") % {"title": cr.title},
        _("Change request #%(n)s is live.") % {"n": cr.pk},
        cr,
    )
    return cr


def _apply_tag_changes(user, cr: ChangeRequest, items: list[ChangeItem], reason: str) -> None:
    """Carry out the tag changes of ``cr`` (inside :func:`apply`'s transaction)."""
    tags = {t.pk: t for t in Tag.objects.select_for_update().filter(pk__in=[i.tag_id for i in items])}
    for item in items:
        tag = tags[item.tag_id]
        expected = TagStatus.IN_REVIEW if item.kind == ChangeKind.CREATE else None
        if expected and tag.status != expected:
            raise StaleChangeRequest(
                _("The tag “%(code)s” is no longer in review.") % {"code": tag.code}, tag=tag.code
            )
        if item.kind != ChangeKind.CREATE and tag.published_version != item.base_version:
            raise StaleChangeRequest(
                _(
                    "The request was made on version %(base)s of “%(code)s”, but version %(current)s "
                    "has been published since. Propose the change again on the current version."
                )
                % {"base": item.base_version, "code": tag.code, "current": tag.published_version},
                tag=tag.code,
                base_version=item.base_version,
                current_version=tag.published_version,
            )
        if tag.status not in KIND_FROM[ChangeKind(item.kind)] and item.kind != ChangeKind.CREATE:
            raise StaleChangeRequest(
                _("The tag “%(code)s” is now %(status)s.")
                % {"code": tag.code, "status": tag.get_status_display()},
                tag=tag.code,
            )
    for item in items:
        tag = tags[item.tag_id]
        version = None
        if item.kind == ChangeKind.CREATE:
            version = catalog.publish_tag(tag, user=user, note=reason)
        elif item.kind == ChangeKind.UPDATE:
            version = catalog.apply_changes(tag, item.changes, user=user, reason=reason)
        elif item.kind == ChangeKind.DEPRECATE:
            catalog.set_status(tag, TagStatus.DEPRECATED, user=user, reason=reason)
        elif item.kind == ChangeKind.RETIRE:
            catalog.set_status(tag, TagStatus.RETIRED, user=user, reason=reason)
        elif item.kind == ChangeKind.RESTORE:
            catalog.set_status(tag, TagStatus.PUBLISHED, user=user, reason=reason)
        elif item.kind == ChangeKind.MERGE:
            catalog.merge_tags(tag, item.merge_target, user=user, reason=reason)
        if version is not None:
            item.produced_version = version
            item.save(update_fields=["produced_version"])
        _audit(
            cr, user, AuditAction.APPLIED, tag=tag, kind=item.kind,
            version=version.version if version else tag.published_version,
            fields=[row["field"] for row in item.diff],
        )  # fmt: skip


@transaction.atomic
def comment(user, cr: ChangeRequest, text: str) -> Comment:
    if not (text or "").strip():
        raise ValidationError({"text": _("A comment cannot be empty.")})
    if not may(user, cr, "view"):
        raise PermissionDenied(_("You may not comment on this change request."))
    note = Comment.objects.create(change_request=cr, author=user, text=text.strip())
    _audit(cr, user, AuditAction.COMMENTED)
    people = {cr.proposer_id: cr.proposer}
    if cr.reviewer_id:
        people[cr.reviewer_id] = cr.reviewer
    for other in get_user_model().objects.filter(comment__change_request=cr).distinct():
        people[other.pk] = other
    if cr.state == RequestState.SUBMITTED:
        for steward in reviewers_of(cr.business_line):
            people[steward.pk] = steward
    people.pop(user.pk, None)
    notify(
        list(people.values()),
        _("New comment on #%(n)s %(title)s") % {"n": cr.pk, "title": cr.title},
        f"{user}: {text.strip()}",
        cr,
    )
    return note


@transaction.atomic
def certify(user, tag: Tag, note: str = "") -> Tag:
    """One-click re-certification by a steward of the tag's business line."""
    if not user.has_perm("governance.review_changerequest"):
        raise PermissionDenied(_("Only data stewards certify tags."))
    tag = catalog.certify_tag(user, tag, note=note)
    _audit(None, user, AuditAction.CERTIFIED, tag=tag, note=note)
    return tag


# ---------------------------------------------------------------------------
# Notifications


def notify(users, subject: str, body: str, cr: ChangeRequest | None = None) -> list:
    """An inbox message (and e-mail) about a change request, linking to its page, for
    the active ones among ``users`` (service accounts that propose do not read one)."""
    url = reverse("governance:request", args=[cr.pk]) if cr is not None else ""
    users = [u for u in users if u is not None and u.is_active]
    return notifications.notify(users, subject, body, topic=cr, url=url)


# ---------------------------------------------------------------------------
# Queries used by pages and the API


def requests_for(user):
    return ChangeRequest.objects.restrict(user, "view").select_related(
        "business_line", "brand", "proposer", "reviewer"
    )


def open_requests_for_tag(tag: Tag):
    return ChangeRequest.objects.filter(items__tag=tag).filter(
        Q(
            state__in=[
                RequestState.DRAFT,
                RequestState.SUBMITTED,
                RequestState.CHANGES_REQUESTED,
                RequestState.APPROVED,
            ]
        )
    )


def version_people(version_ids: list[int]) -> dict[int, dict]:
    """Who proposed and who approved the change requests that produced the published
    versions ``version_ids`` (registered with the dictionary, which shows them in a tag's
    history)."""
    items = ChangeItem.objects.filter(produced_version_id__in=version_ids).select_related(
        "change_request__proposer", "change_request__reviewer"
    )
    return {
        item.produced_version_id: {
            "proposed_by": item.change_request.proposer,
            "approved_by": item.change_request.reviewer,
        }
        for item in items
    }
