from django.db import models
from django.utils.translation import gettext_lazy as _


class JourneyStatus(models.TextChoices):
    DRAFT = "draft", _("draft")
    PENDING = "pending", _("pending review")
    LIVE = "live", _("live")
    PAUSED = "paused", _("paused")
    ENDED = "ended", _("ended")


class VersionState(models.TextChoices):
    DRAFT = "draft", _("draft")
    PENDING = "pending", _("pending review")
    APPROVED = "approved", _("approved")
    REJECTED = "rejected", _("rejected")
    SUPERSEDED = "superseded", _("superseded")


class InstanceState(models.TextChoices):
    ACTIVE = "active", _("active")
    WAITING = "waiting", _("waiting")
    DONE = "done", _("done")
    EXITED = "exited", _("exited")
    CONVERTED = "converted", _("converted")


#: The states of a person still inside a journey.
OPEN_STATES = (InstanceState.ACTIVE, InstanceState.WAITING)


class HoldoutGroup(models.TextChoices):
    TREATMENT = "treatment", _("treatment")
    HOLDOUT = "holdout", _("holdout")


class ConversionKind(models.TextChoices):
    EVENT = "event", _("event")
    ORDER = "order", _("order")


class NodeType(models.TextChoices):
    ENTRY = "entry", _("entry")
    WAIT = "wait", _("wait")
    BRANCH = "branch", _("branch")
    SPLIT = "split", _("random split")
    HOLDOUT = "holdout", _("holdout")
    SEND = "send", _("send")
    SYNC_TAG = "sync_tag", _("sync tag")
    SET_TAG = "set_tag", _("set tag")
    EXIT = "exit", _("exit")


class Trigger(models.TextChoices):
    AUDIENCE = "audience", _("joins an audience")
    TAG = "tag", _("a tag changes to a value")
    EVENT = "event", _("an event happens")
    SCHEDULE = "schedule", _("on a schedule")


class Reentry(models.TextChoices):
    NEVER = "never", _("never")
    AFTER_DAYS = "after_days", _("after some days")


class StepOutcome(models.TextChoices):
    """What happened at a node (:class:`~.models.InstanceStep`)."""

    ENTERED = "entered", _("entered")
    PASSED = "passed", _("passed")
    WAITED = "waited", _("waited")
    HAPPENED = "happened", _("event happened")
    TIMEOUT = "timeout", _("timed out")
    BRANCHED = "branched", _("branched")
    SENT = "sent", _("sent")
    CAPPED = "capped", _("frequency capped")
    REFUSED = "refused", _("no consent or suppressed")
    UNREACHABLE = "unreachable", _("no recipient on the channel")
    DEFERRED = "deferred", _("deferred (quiet hours)")
    SYNCED = "synced", _("synced")
    TAGGED = "tagged", _("tag set")
    FAILED = "failed", _("failed")
    EXITED = "exited", _("exited")
    CONVERTED = "converted", _("converted")


#: Feedback events written to profiles' Event rows.
EVENT_ENTERED = "journey_entered"
EVENT_EXITED = "journey_exited"
EVENT_CONVERTED = "journey_converted"
