from django.db import models
from django.utils.translation import gettext_lazy as _


class ChangeKind(models.TextChoices):
    CREATE = "create", _("Create")
    UPDATE = "update", _("Update")
    DEPRECATE = "deprecate", _("Deprecate")
    MERGE = "merge", _("Merge")
    RETIRE = "retire", _("Retire")
    RESTORE = "restore", _("Restore")
    #: Publishing an algorithm model's held run (its output tags' values, not their
    #: definition): made only by governance when a run is held, never proposed by hand.
    MODEL_RUN = "model_run", _("Publish model run")
    RESTRUCTURE = "restructure", _("Restructure categories")


#: The kinds of change people propose (pages, API, bulk uploads).
PROPOSABLE_KINDS = tuple(
    kind for kind in ChangeKind if kind not in (ChangeKind.MODEL_RUN, ChangeKind.RESTRUCTURE)
)


class RequestState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("In review")
    CHANGES_REQUESTED = "changes_requested", _("Changes requested")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    APPLIED = "applied", _("Applied")
    WITHDRAWN = "withdrawn", _("Withdrawn")


#: Which states a change request may move to from each state.
REQUEST_TRANSITIONS = {
    RequestState.DRAFT: {RequestState.SUBMITTED, RequestState.WITHDRAWN},
    RequestState.SUBMITTED: {
        RequestState.APPROVED,
        RequestState.REJECTED,
        RequestState.CHANGES_REQUESTED,
        RequestState.WITHDRAWN,
    },
    RequestState.CHANGES_REQUESTED: {RequestState.SUBMITTED, RequestState.WITHDRAWN},
    RequestState.APPROVED: {RequestState.APPLIED},
    RequestState.REJECTED: set(),
    RequestState.APPLIED: set(),
    RequestState.WITHDRAWN: set(),
}

OPEN_STATES = (
    RequestState.DRAFT,
    RequestState.SUBMITTED,
    RequestState.CHANGES_REQUESTED,
    RequestState.APPROVED,
)


class AuditAction(models.TextChoices):
    PROPOSED = "proposed", _("Proposed")
    SUBMITTED = "submitted", _("Submitted for review")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    CHANGES_REQUESTED = "changes_requested", _("Changes requested")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    APPLIED = "applied", _("Applied")
    COMMENTED = "commented", _("Commented")
    CERTIFIED = "certified", _("Re-certified")


class ReportKind(models.TextChoices):
    USAGE = "usage", _("Usage")
    COLD = "cold", _("Cold tags")
    MERGE = "merge", _("Merge suggestions")
    ACTIVITY = "activity", _("Activity")


class ReportStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCESS = "success", _("Done")
    FAILED = "failed", _("Failed")


class ReportTrigger(models.TextChoices):
    SCHEDULE = "schedule", _("Schedule")
    PORTAL = "portal", _("Portal")
    API = "api", _("API")
    COMMAND = "command", _("Command")
