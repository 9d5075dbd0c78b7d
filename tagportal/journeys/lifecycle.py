"""A journey's life: drafts and versions, review with four eyes, pause, resume, end.

Each state change is a function here; pages, the API and the admin call them and never
set a status themselves. The states::

    journey   draft ──submit──▶ pending ──approve──▶ live ⇄ paused ──end──▶ ended
                                   └──reject──▶ draft        (live/paused ──end──▶ ended)
    version   draft ──submit──▶ pending ──approve──▶ approved ──(next approval)──▶ superseded
                                   └──reject──▶ rejected

An edit of a journey whose newest version is approved (or rejected) makes a new draft
version (:func:`new_version`); people already inside stay on the version they entered
(their instances point at it) and new people enter the live version only. A version
waiting for review is not edited: it is approved or rejected first.

Refusals: ``PermissionDenied`` (403) for a user who may not, :class:`~tagportal.core.exceptions.Conflict`
(409) for an action the current state does not allow, ``ValidationError`` (400) for a
graph with problems or a rejection without a reason.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.core.exceptions import Conflict
from tagportal.core.permissions import may, may_add_into

from . import graph as graphs
from .choices import OPEN_STATES, InstanceState, JourneyStatus, VersionState
from .models import Journey, JourneyInstance, JourneyVersion

APPROVE_PERMISSION = "journeys.approve_journey"
#: Journey states in which a version may still be edited, submitted or approved.
WORKING = (JourneyStatus.DRAFT, JourneyStatus.PENDING, JourneyStatus.LIVE, JourneyStatus.PAUSED)


class InvalidTransition(Conflict):
    """The journey or version is not in a state that allows this action (HTTP 409)."""


def _state_label(value: str, choices) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def _refuse(journey: Journey, message: str) -> InvalidTransition:
    """``message`` has a ``%(state)s``: the journey's state, in the user's language."""
    return InvalidTransition(
        message % {"state": _state_label(journey.status, JourneyStatus)}, status=journey.status
    )


def may_edit(user, journey: Journey) -> bool:
    return bool(user and user.is_authenticated and may(user, journey, "change"))


def may_approve(user, version: JourneyVersion) -> bool:
    """A steward of the journey's brand (``journeys.approve_journey`` and the right to
    review there) who did not propose the version."""
    if not (user and user.is_authenticated and user.has_perm(APPROVE_PERMISSION)):
        return False
    if version.proposed_by_id is not None and version.proposed_by_id == user.pk:
        return False
    return may(user, version.journey, "review", check_model_permission=False)


def _check_editor(user, journey: Journey) -> None:
    if not may_edit(user, journey):
        raise PermissionDenied(
            _("You may not change journeys of the brand “%(brand)s”.") % {"brand": journey.brand}
        )


def _check_graph(graph, brand) -> None:
    errors = graphs.validate(graph, brand)
    if errors:
        raise ValidationError({"graph": errors})


def latest_version(journey: Journey) -> JourneyVersion | None:
    return journey.versions.order_by("-number").first()


def pending_version(journey: Journey) -> JourneyVersion | None:
    return journey.versions.filter(state=VersionState.PENDING).order_by("-number").first()


def _locked(journey: Journey) -> Journey:
    return Journey.objects.select_for_update().select_related("brand").get(pk=journey.pk)


@transaction.atomic
def create(user, brand, name: str, graph: dict, description: str = "") -> Journey:
    """A new draft journey of ``brand`` with its first version."""
    if not may_add_into(user, Journey, brand):
        raise PermissionDenied(_("You may not add journeys to the brand “%(brand)s”.") % {"brand": brand})
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": [_("Give the journey a name.")]})
    if Journey.objects.filter(brand=brand, name=name).exists():
        raise ValidationError(
            {"name": [_("The brand already has a journey called “%(name)s”.") % {"name": name}]}
        )
    _check_graph(graph, brand)
    journey = Journey.objects.create(brand=brand, name=name, description=description or "", owner=user)
    JourneyVersion.objects.create(journey=journey, number=1, graph=graph, proposed_by=user)
    return journey


@transaction.atomic
def new_version(user, journey: Journey, graph: dict) -> JourneyVersion:
    """Keep an edited graph: the draft version is rewritten; when the newest version is
    approved or rejected, a new draft version is made (people inside stay on theirs).
    Refused while a version waits for review and once the journey has ended."""
    journey = _locked(journey)
    _check_editor(user, journey)
    if journey.status == JourneyStatus.ENDED:
        raise _refuse(journey, _("A journey that is “%(state)s” cannot be edited."))
    latest = latest_version(journey)
    if latest is not None and latest.state == VersionState.PENDING:
        raise InvalidTransition(
            _(
                "Version %(n)s is waiting for review: it is approved or rejected before the journey is edited again."
            )
            % {"n": latest.number},
            version=latest.number,
        )
    _check_graph(graph, journey.brand)
    if latest is not None and latest.state == VersionState.DRAFT:
        latest.graph = graph
        latest.proposed_by = user
        latest.save(update_fields=["graph", "proposed_by"])
        return latest
    number = (latest.number if latest else 0) + 1
    return JourneyVersion.objects.create(journey=journey, number=number, graph=graph, proposed_by=user)


@transaction.atomic
def rename(user, journey: Journey, name: str, description: str) -> Journey:
    journey = _locked(journey)
    _check_editor(user, journey)
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": [_("Give the journey a name.")]})
    if Journey.objects.filter(brand=journey.brand, name=name).exclude(pk=journey.pk).exists():
        raise ValidationError(
            {"name": [_("The brand already has a journey called “%(name)s”.") % {"name": name}]}
        )
    journey.name, journey.description = name, description or ""
    journey.save(update_fields=["name", "description", "updated"])
    return journey


@transaction.atomic
def submit(user, journey: Journey) -> JourneyVersion:
    """Send the draft version for a steward's review."""
    journey = _locked(journey)
    _check_editor(user, journey)
    if journey.status not in WORKING:
        raise _refuse(journey, _("A journey that is “%(state)s” cannot be submitted."))
    version = latest_version(journey)
    if version is None or version.state != VersionState.DRAFT:
        raise InvalidTransition(_("There is no draft version to submit; edit the journey first."))
    _check_graph(version.graph, journey.brand)
    version.state = VersionState.PENDING
    version.proposed_by = user
    version.proposed_at = timezone.now()
    version.review_note = ""
    version.save(update_fields=["state", "proposed_by", "proposed_at", "review_note"])
    if journey.status == JourneyStatus.DRAFT:
        journey.status = JourneyStatus.PENDING
        journey.save(update_fields=["status", "updated"])
    _tell_stewards(journey, version)
    return version


def _check_reviewer(user, version: JourneyVersion) -> None:
    if version.proposed_by_id is not None and version.proposed_by_id == user.pk:
        raise PermissionDenied(
            _("Four eyes: nobody approves or rejects their own journey version, admins included.")
        )
    if not may_approve(user, version):
        raise PermissionDenied(
            _("Only a data steward of the brand “%(brand)s” may review this journey.")
            % {"brand": version.journey.brand}
        )


def _locked_version(version: JourneyVersion) -> JourneyVersion:
    return JourneyVersion.objects.select_for_update().select_related("journey__brand").get(pk=version.pk)


@transaction.atomic
def approve(user, version: JourneyVersion, note: str = "") -> JourneyVersion:
    """Approve a version waiting for review: it becomes the live version (a paused
    journey stays paused), the one live before is superseded."""
    version = _locked_version(version)
    journey = _locked(version.journey)
    _check_reviewer(user, version)
    if version.state != VersionState.PENDING:
        raise InvalidTransition(
            _("Version %(n)s is “%(state)s”, not waiting for review.")
            % {"n": version.number, "state": _state_label(version.state, VersionState)}
        )
    if journey.status not in WORKING:
        raise _refuse(journey, _("A journey that is “%(state)s” cannot be approved."))
    # Re-checked against the brand as it is now (an audience or account may be gone).
    _check_graph(version.graph, journey.brand)
    now = timezone.now()
    JourneyVersion.objects.filter(journey=journey, state=VersionState.APPROVED).update(
        state=VersionState.SUPERSEDED
    )
    version.state = VersionState.APPROVED
    version.approved_by = user
    version.approved_at = now
    version.review_note = note or ""
    version.save(update_fields=["state", "approved_by", "approved_at", "review_note"])
    journey.live_version = version
    if journey.status != JourneyStatus.PAUSED:
        journey.status = JourneyStatus.LIVE
    journey.save(update_fields=["live_version", "status", "updated"])
    _tell_proposer(
        version,
        _("Journey approved: %(name)s v%(n)s") % {"name": journey.name, "n": version.number},
        _("%(user)s approved version %(n)s of “%(name)s”. %(note)s")
        % {"user": user, "n": version.number, "name": journey.name, "note": note},
    )
    return version


@transaction.atomic
def reject(user, version: JourneyVersion, note: str) -> JourneyVersion:
    """Send a version back with the reason; a journey never live goes back to draft."""
    version = _locked_version(version)
    journey = _locked(version.journey)
    _check_reviewer(user, version)
    if not (note or "").strip():
        raise ValidationError({"note": [_("Say why, so the proposer knows what to change.")]})
    if version.state != VersionState.PENDING:
        raise InvalidTransition(
            _("Version %(n)s is “%(state)s”, not waiting for review.")
            % {"n": version.number, "state": _state_label(version.state, VersionState)}
        )
    version.state = VersionState.REJECTED
    version.review_note = note.strip()
    version.save(update_fields=["state", "review_note"])
    if journey.status == JourneyStatus.PENDING:
        journey.status = JourneyStatus.DRAFT
        journey.save(update_fields=["status", "updated"])
    _tell_proposer(
        version,
        _("Journey sent back: %(name)s v%(n)s") % {"name": journey.name, "n": version.number},
        _("%(user)s rejected version %(n)s of “%(name)s”: %(note)s")
        % {"user": user, "n": version.number, "name": journey.name, "note": note},
    )
    return version


def _set_status(user, journey: Journey, allowed: tuple, status: str, message: str) -> Journey:
    journey = _locked(journey)
    _check_editor(user, journey)
    if journey.status not in allowed:
        raise _refuse(journey, message)
    journey.status = status
    journey.save(update_fields=["status", "updated"])
    return journey


@transaction.atomic
def pause(user, journey: Journey) -> Journey:
    """Stop moving people on (and letting new ones in) until resumed; nobody is dropped."""
    return _set_status(
        user,
        journey,
        (JourneyStatus.LIVE,),
        JourneyStatus.PAUSED,
        _("Only a live journey can be paused; this one is “%(state)s”."),
    )


@transaction.atomic
def resume(user, journey: Journey) -> Journey:
    return _set_status(
        user,
        journey,
        (JourneyStatus.PAUSED,),
        JourneyStatus.LIVE,
        _("Only a paused journey can be resumed; this one is “%(state)s”."),
    )


@transaction.atomic
def end(user, journey: Journey) -> Journey:
    """End the journey for good: nobody enters again, people still inside leave it."""
    journey = _set_status(
        user,
        journey,
        (JourneyStatus.LIVE, JourneyStatus.PAUSED),
        JourneyStatus.ENDED,
        _("Only a live or paused journey can be ended; this one is “%(state)s”."),
    )
    JourneyInstance.objects.filter(journey=journey, state__in=OPEN_STATES).update(
        state=InstanceState.EXITED, left_at=timezone.now(), next_run_at=None
    )
    return journey


# ---------------------------------------------------------------------------
# who is told


def _tell_proposer(version: JourneyVersion, subject: str, body: str) -> None:
    from tagportal.notifications.services import notify

    if version.proposed_by_id:
        transaction.on_commit(lambda: notify([version.proposed_by], subject, body))


def _tell_stewards(journey: Journey, version: JourneyVersion) -> None:
    from tagportal.core.roles import reviewers_of
    from tagportal.notifications.services import notify

    def send():
        people = reviewers_of(journey.brand.business_line, exclude=version.proposed_by)
        stewards = [u for u in people if may_approve(u, version)]
        if stewards:
            notify(
                stewards,
                _("Journey to review: %(name)s v%(n)s") % {"name": journey.name, "n": version.number},
                _("%(user)s submitted version %(n)s of “%(name)s” (%(brand)s) for review.")
                % {
                    "user": version.proposed_by,
                    "n": version.number,
                    "name": journey.name,
                    "brand": journey.brand,
                },
            )

    transaction.on_commit(send)


def review_queue(user):
    """Versions waiting for ``user``'s review: of brands they steward, proposed by others."""
    if not (user and user.is_authenticated and user.has_perm(APPROVE_PERMISSION)):
        return JourneyVersion.objects.none()
    journeys = Journey.objects.restrict(user, "review", check_model_permission=False)
    return (
        JourneyVersion.objects.filter(state=VersionState.PENDING, journey__in=journeys)
        .exclude(proposed_by=user)
        .select_related("journey__brand", "proposed_by")
        .order_by("proposed_at", "pk")
    )
