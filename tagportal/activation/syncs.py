"""Audiences synced to a channel's customer tag (WeCom customer tag, 公众号 user tag,
有赞 tag, 微盟 CDP tag): the first run tags everyone in the latest snapshot, each later
snapshot tags who joined and untags who left.

- :func:`create_sync`: an :class:`~.models.AudienceSync` (the user may change the
  audience and see the account, of the audience's brand and one of :data:`~.models.SYNC_KINDS`),
  its first run queued if the audience has a snapshot, and a use of its tags recorded.
- :func:`queue_run`: the work from the snapshot last queued to the latest one (all
  members the first time; a skipped snapshot is diffed over) as :class:`~.models.SyncBatch`
  rows of at most :data:`CHUNK` recipients, all due now. The audiences' ``snapshot_taken``
  signal calls it for every active sync of the audience (:func:`on_snapshot_taken`).
- :func:`claim_due` / :func:`process` / :func:`run_due`: due batches claimed under a
  lease (``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL), a sync's batches in snapshot
  order; the tag created on the platform if missing; retried with backoff after a
  retryable error, failed on a final one. Tagging twice changes nothing, so a batch taken
  again after a worker died is safe; its counts are written once, under its lease.

Who each kind addresses (:func:`sync_recipients`): the WeCom ``external_userid`` (tagged
by the member ``settings["userid"]``), the 公众号 openid, the 有赞 customer by mobile (the
number read from the contact vault when calling, each read recorded; a batch keeps only
the number's keyed hash) and the 微盟 ``wid`` (the person's CRM member id identity, a number).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from pyroaring import BitMap

from tagportal.audiences import services as audience_services
from tagportal.audiences.choices import AudienceStatus
from tagportal.audiences.models import Audience, AudienceSnapshot
from tagportal.core.leases import claim_pks
from tagportal.core.permissions import may
from tagportal.profiles.choices import IdentityType
from tagportal.profiles.models import Identity
from tagportal.usage.choices import UsageKind

from . import deliveries, services, vault
from .choices import ChannelKind
from .connectors import wechat, wecom, weimob
from .connectors.base import ChannelError, RateLimited
from .models import (
    SYNC_KINDS,
    AudienceSync,
    BatchState,
    ChannelAccount,
    ContactEntry,
    ContactKind,
    SyncBatch,
    SyncOp,
    SyncStatus,
)
from .recipients import recipients

log = logging.getLogger(__name__)

#: The most recipients one batch row holds: the platform's cap of one call (公众号 50
#: openids, 微盟 100 wids), or a bounded run of per-customer calls (WeCom, 有赞).
CHUNK = {
    ChannelKind.WECOM: 100,
    ChannelKind.WECHAT_MP: wechat.MAX_OPENIDS,
    ChannelKind.YOUZAN: 50,
    ChannelKind.WEIMOB: weimob.MAX_WIDS,
}
#: The longest tag name each kind takes (characters).
MAX_TAG_NAME = {
    ChannelKind.WECOM: wecom.MAX_TAG_NAME,
    ChannelKind.WECHAT_MP: wechat.MAX_TAG_NAME,
    ChannelKind.YOUZAN: 20,
    ChannelKind.WEIMOB: 100,
}
#: The settings each kind takes (all required).
SETTINGS = {
    ChannelKind.WECOM: ("userid",),
    ChannelKind.WECHAT_MP: (),
    ChannelKind.YOUZAN: (),
    ChannelKind.WEIMOB: ("tag_id",),
}
#: WeCom's answer when the member has no relationship with the customer: that customer
#: is refused, the others of the batch go on.
WECOM_NOT_FRIEND = 84061
#: 公众号: the tag name is taken (the tag exists already).
WECHAT_TAG_EXISTS = 45157
#: The identity a 微盟 customer's ``wid`` is kept as.
WEIMOB_WID = IdentityType.CRM_MEMBER_ID
UNFINISHED = (BatchState.QUEUED, BatchState.RUNNING)


class SyncRefused(ValueError):
    pass


def _setting(name: str, default):
    return getattr(settings, name, default)


# creating --------------------------------------------------------------------------
def _check(audience: Audience, account: ChannelAccount, tag_name: str, tag_group: str, options: dict) -> None:
    if account.kind not in SYNC_KINDS:
        raise SyncRefused(
            _("An audience syncs to a WeCom, 公众号, Youzan or Weimob account, not to “%(kind)s”.")
            % {"kind": account.get_kind_display()}
        )
    if audience.status == AudienceStatus.ARCHIVED:
        raise SyncRefused(_("An archived audience is not synced."))
    if account.brand_id != audience.brand_id:
        raise SyncRefused(_("The channel account belongs to another brand than the audience."))
    if not account.is_active:
        raise SyncRefused(_("The channel account is not active."))
    limit = MAX_TAG_NAME[account.kind]
    if not tag_name or len(tag_name) > limit:
        raise SyncRefused(
            _("The tag name must have 1 to %(max)s characters on this channel.") % {"max": limit}
        )
    if account.kind == ChannelKind.WECOM and (not tag_group or len(tag_group) > wecom.MAX_TAG_NAME):
        raise SyncRefused(
            _("A WeCom tag needs a tag group name of 1 to %(max)s characters.") % {"max": wecom.MAX_TAG_NAME}
        )
    if not isinstance(options, dict):
        raise SyncRefused(_("The settings must be a JSON object."))
    wanted = SETTINGS[account.kind]
    for name in options:
        if name not in wanted:
            raise SyncRefused(
                _("“%(name)s” is not a sync setting of this channel; it takes: %(names)s.")
                % {"name": name, "names": ", ".join(wanted) or "—"}
            )
    for name in wanted:
        value = options.get(name)
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
            raise SyncRefused(_("This channel needs the sync setting “%(name)s”.") % {"name": name})


def create_sync(
    user,
    audience: Audience,
    account: ChannelAccount,
    tag_name: str,
    *,
    tag_group: str = "",
    options: dict | None = None,
    now: dt.datetime | None = None,
) -> AudienceSync:
    """A sync of ``audience`` to the customer tag ``tag_name`` of ``account`` (WeCom: in
    the group ``tag_group``; ``options``: the kind's :data:`SETTINGS`), its first run
    queued when the audience has a snapshot. :class:`PermissionDenied` unless ``user``
    may change the audience and see the account; :class:`SyncRefused` for bad input."""
    tag_name, tag_group, options = (tag_name or "").strip(), (tag_group or "").strip(), options or {}
    if not may(user, audience, "change"):
        raise PermissionDenied(_("You may not change this audience."))
    if not ChannelAccount.objects.restrict(user, "view").filter(pk=account.pk).exists():
        raise PermissionDenied(_("You may not use this channel account."))
    _check(audience, account, tag_name, tag_group, options)
    with transaction.atomic():
        if AudienceSync.objects.filter(audience=audience, account=account, tag_name=tag_name).exists():
            raise SyncRefused(_("The audience is already synced to this tag of the account."))
        tag_id = {ChannelKind.YOUZAN: tag_name, ChannelKind.WEIMOB: str(options.get("tag_id", ""))}
        sync = AudienceSync.objects.create(
            audience=audience,
            account=account,
            tag_name=tag_name,
            tag_group=tag_group if account.kind == ChannelKind.WECOM else "",
            platform_tag_id=tag_id.get(account.kind, ""),
            settings={k: str(v).strip() for k, v in options.items()},
            created_by=user,
        )
        audience_services.record_use(audience, user, UsageKind.ACTIVATION)
        queue_run(sync.pk, now=now)
    sync.refresh_from_db()
    return sync


def _check_change(user, sync: AudienceSync) -> None:
    if not may(user, sync.audience, "change"):
        raise PermissionDenied(_("You may not change this audience."))


def pause(user, sync: AudienceSync) -> AudienceSync:
    """Stop the sync: no batch of it is claimed and no snapshot queues work until resumed."""
    _check_change(user, sync)
    AudienceSync.objects.filter(pk=sync.pk).update(status=SyncStatus.PAUSED, last_updated=timezone.now())
    sync.refresh_from_db()
    return sync


def resume(user, sync: AudienceSync, *, now: dt.datetime | None = None) -> AudienceSync:
    """Start the sync again: its queued batches go on, and the snapshots taken while it
    was paused are queued as one diff."""
    _check_change(user, sync)
    with transaction.atomic():
        AudienceSync.objects.filter(pk=sync.pk).update(status=SyncStatus.ACTIVE, last_updated=timezone.now())
        queue_run(sync.pk, now=now)
    sync.refresh_from_db()
    return sync


# queueing --------------------------------------------------------------------------
def sync_recipients(account: ChannelAccount, oneids) -> list[str]:
    """The recipients the account tags for ``oneids`` (people it cannot reach left out)."""
    return list(_recipient_of(account, oneids).values())


def _recipient_of(account: ChannelAccount, oneids) -> dict[int, str]:
    """OneID → the recipient the account tags, for the people of ``oneids`` it reaches."""
    if account.kind != ChannelKind.WEIMOB:
        return dict(recipients(account, oneids))
    found: dict[int, str] = {}
    rows = (
        Identity.objects.filter(brand_id=account.brand_id, type=WEIMOB_WID, customer__oneid__in=list(oneids))
        .order_by("customer__oneid", "pk")
        .values_list("customer__oneid", "value")
    )
    for oneid, value in rows:
        if value and value.isdigit():
            found.setdefault(oneid, value)
    return found


def _batches(sync: AudienceSync, number: int, op: str, people: BitMap, now) -> tuple[list[SyncBatch], int]:
    targets = sync_recipients(sync.account, people) if people else []
    size = CHUNK[sync.account.kind]
    rows = [
        SyncBatch(
            sync=sync, number=number, op=op, recipients=targets[start : start + size], next_attempt_at=now
        )
        for start in range(0, len(targets), size)
    ]
    return rows, len(people) - len(targets)


def queue_run(sync_id: int, *, now: dt.datetime | None = None) -> int:
    """Queue the work that brings an active sync from the snapshot last queued to the
    latest one; answers the batches queued (0 when paused or already up to date)."""
    now = now or timezone.now()
    with transaction.atomic():
        sync = AudienceSync.objects.select_for_update(of=("self",)).select_related("account").get(pk=sync_id)
        if sync.status != SyncStatus.ACTIVE:
            return 0
        latest = AudienceSnapshot.objects.filter(audience_id=sync.audience_id).order_by("-number").first()
        if latest is None or (sync.queued_number is not None and latest.number <= sync.queued_number):
            return 0
        base = None
        if sync.queued_number is not None:
            base = AudienceSnapshot.objects.filter(
                audience_id=sync.audience_id, number=sync.queued_number
            ).first()
        if base is None:  # the first run (or the snapshot it stood on is gone): everyone
            joined, left = audience_services.snapshot_members(latest), BitMap()
        else:
            diff = audience_services.snapshot_diff(latest, base)
            joined, left = diff["joined"], diff["left"]
        adds, unreachable_in = _batches(sync, latest.number, SyncOp.ADD, joined, now)
        removes, unreachable_out = _batches(sync, latest.number, SyncOp.REMOVE, left, now)
        SyncBatch.objects.bulk_create([*adds, *removes], batch_size=500)
        fields = {
            "queued_number": latest.number,
            "added": 0,
            "removed": 0,
            "rejected": 0,
            "unreachable": unreachable_in + unreachable_out,
            "last_error": "",
            "last_updated": now,
        }
        if not adds and not removes:
            fields["synced_number"] = latest.number
        AudienceSync.objects.filter(pk=sync.pk).update(**fields)
        if (adds or removes) and getattr(settings, "TAGPORTAL_SYNC_RUN_AT_ONCE", True):
            # applied now (a worker, or a thread without one), not at the next periodic run
            from tagportal.core import background

            from .tasks import run_syncs

            background.queue_after_commit(run_syncs)
    return len(adds) + len(removes)


def on_snapshot_taken(sender, audience_id: int, number: int, **kwargs) -> int:
    """Queue the new snapshot's changes for each active sync of the audience."""
    queued = 0
    for sync_id in AudienceSync.objects.filter(audience_id=audience_id, status=SyncStatus.ACTIVE).values_list(
        "pk", flat=True
    ):
        try:
            queued += queue_run(sync_id)
        except Exception:  # one sync's failure leaves the others (and the snapshot) alone
            log.exception(
                "queueing sync %s for snapshot %s of audience %s failed", sync_id, number, audience_id
            )
    return queued


# tagging people directly -------------------------------------------------------------
#: The snapshot number of the batches of a sync with no audience (all alike: no order).
DIRECT = 0


def direct_sync(
    account: ChannelAccount, tag_name: str, *, tag_group: str = "", options: dict | None = None
) -> AudienceSync:
    """The sync with no audience through which people are tagged ``tag_name`` on
    ``account`` one by one (created once per account and tag name)."""
    tag_name, tag_group, options = (tag_name or "").strip(), (tag_group or "").strip(), options or {}
    found = AudienceSync.objects.filter(audience__isnull=True, account=account, tag_name=tag_name).first()
    if found is not None:
        return found
    if account.kind not in SYNC_KINDS:
        raise SyncRefused(
            _("People are tagged on a WeCom, 公众号, Youzan or Weimob account, not on “%(kind)s”.")
            % {"kind": account.get_kind_display()}
        )
    limit = MAX_TAG_NAME[account.kind]
    if not tag_name or len(tag_name) > limit:
        raise SyncRefused(
            _("The tag name must have 1 to %(max)s characters on this channel.") % {"max": limit}
        )
    if account.kind == ChannelKind.WECOM:
        tag_group = tag_group or tag_name
        options = {"userid": options.get("userid") or account.settings.get("userid", ""), **options}
    for name in SETTINGS[account.kind]:
        if not str(options.get(name) or "").strip():
            raise SyncRefused(_("This channel needs the sync setting “%(name)s”.") % {"name": name})
    tag_id = {ChannelKind.YOUZAN: tag_name, ChannelKind.WEIMOB: str(options.get("tag_id", ""))}
    try:
        with transaction.atomic():
            return AudienceSync.objects.create(
                audience=None,
                account=account,
                tag_name=tag_name,
                tag_group=tag_group[: wecom.MAX_TAG_NAME] if account.kind == ChannelKind.WECOM else "",
                platform_tag_id=tag_id.get(account.kind, ""),
                settings={k: str(v).strip() for k, v in options.items() if k in SETTINGS[account.kind]},
                queued_number=DIRECT,
            )
    except IntegrityError:  # created meanwhile by another worker
        return AudienceSync.objects.get(audience__isnull=True, account=account, tag_name=tag_name)


def tag_people(
    account: ChannelAccount,
    tag_name: str,
    oneids,
    *,
    tag_group: str = "",
    options: dict | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """Tag ``oneids`` ``tag_name`` on the platform of ``account`` (WeCom corp tag, 公众号
    user tag, 有赞 tag, 微盟 tag; ``tag_group`` and ``options`` as :func:`create_sync`'s).

    The work is queued as :class:`~.models.SyncBatch` rows of the account's sync with no
    audience (:func:`direct_sync`), in the caller's transaction: the periodic sync task
    applies them (the tag created when missing, per-person refusals counted on the batch),
    so nothing is sent if the caller rolls back and a killed worker's batch is taken again.
    Answers ``{"sync", "queued" (recipients), "batches", "unreachable", "reached"}``;
    ``reached`` holds the oneids queued. :class:`SyncRefused` for a bad account or tag."""
    now = now or timezone.now()
    if not account.is_active:
        raise SyncRefused(_("The channel account is not active."))
    sync = direct_sync(account, tag_name, tag_group=tag_group, options=options)
    people = sorted(set(oneids))
    pairs = _recipient_of(account, people)
    targets = list(dict.fromkeys(pairs.values()))
    size = CHUNK[account.kind]
    rows = [
        SyncBatch(
            sync=sync, number=DIRECT, op=SyncOp.ADD, recipients=targets[i : i + size], next_attempt_at=now
        )
        for i in range(0, len(targets), size)
    ]
    SyncBatch.objects.bulk_create(rows, batch_size=500)
    if rows:
        AudienceSync.objects.filter(pk=sync.pk).update(
            unreachable=F("unreachable") + len(people) - len(pairs), last_updated=now
        )
        if getattr(settings, "TAGPORTAL_SYNC_RUN_AT_ONCE", True):
            from tagportal.core import background

            from .tasks import run_syncs

            background.queue_after_commit(run_syncs)
    return {
        "sync": sync.pk,
        "queued": len(targets),
        "batches": len(rows),
        "unreachable": len(people) - len(pairs),
        "reached": sorted(pairs),
    }


# claiming --------------------------------------------------------------------------
def _lease(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=_setting("TAGPORTAL_SYNC_LEASE_SECONDS", 300))


def claim_due(limit: int = 20, now: dt.datetime | None = None) -> list[SyncBatch]:
    """Move at most ``limit`` due batches of active syncs to ``running`` under a lease
    (each claim counts an attempt): the queued ones whose time has come and the running
    ones whose lease ran out. A batch waits while an earlier snapshot of its sync is
    unfinished, so adds and removes land in order."""
    now = now or timezone.now()
    earlier = SyncBatch.objects.filter(
        sync_id=OuterRef("sync_id"), number__lt=OuterRef("number"), state__in=UNFINISHED
    )
    due = (
        SyncBatch.objects.filter(
            Q(state=BatchState.QUEUED, next_attempt_at__lte=now)
            | Q(state=BatchState.RUNNING, lease_until__lt=now),
            sync__status=SyncStatus.ACTIVE,
        )
        .exclude(Exists(earlier))
        .order_by("next_attempt_at", "pk")
    )
    with transaction.atomic():
        pks = claim_pks(
            due,
            limit,
            state=BatchState.RUNNING,
            lease_until=_lease(now),
            attempts=F("attempts") + 1,
            updated=now,
        )
        if not pks:
            return []
        return list(
            SyncBatch.objects.filter(pk__in=pks).select_related("sync", "sync__account").order_by("pk")
        )


# the platforms ----------------------------------------------------------------------
def _ensure_tag(sync: AudienceSync, client) -> str:
    """The platform's id of the sync's tag, created there if missing (once: under the
    sync's row lock)."""
    if sync.platform_tag_id:
        return sync.platform_tag_id
    with transaction.atomic():
        locked = AudienceSync.objects.select_for_update(of=("self",)).get(pk=sync.pk)
        if not locked.platform_tag_id:
            kind = sync.account.kind
            if kind == ChannelKind.WECOM:
                tag_id = _wecom_tag(client, sync.tag_group, sync.tag_name)
            elif kind == ChannelKind.WECHAT_MP:
                tag_id = _wechat_tag(client, sync.tag_name)
            else:  # Youzan tags by name; a Weimob tag id is given when the sync is created
                raise ChannelError("no_tag", _("The sync has no platform tag id."), retryable=False)
            AudienceSync.objects.filter(pk=sync.pk).update(platform_tag_id=tag_id)
            locked.platform_tag_id = tag_id
    sync.platform_tag_id = locked.platform_tag_id
    return sync.platform_tag_id


def _wecom_tag(client, group_name: str, name: str) -> str:
    group_id = ""
    for group in client.get_corp_tag_list():
        if group.get("group_name") == group_name:
            group_id = group_id or group.get("group_id", "")
            for tag in group.get("tag", []):
                if tag.get("name") == name and not tag.get("deleted"):
                    return str(tag["id"])
    created = client.add_corp_tag([name], group_id=group_id, group_name="" if group_id else group_name)
    for tag in created.get("tag", []):
        if tag.get("name") == name:
            return str(tag["id"])
    raise ChannelError("no_tag", _("WeCom answered no id for the new tag."), retryable=True)


def _wechat_tag(client, name: str) -> str:
    def existing():
        return next((str(t["id"]) for t in client.get_tags() if t.get("name") == name), "")

    found = existing()
    if found:
        return found
    try:
        return str(client.create_tag(name)["id"])
    except ChannelError as exc:
        if exc.code != WECHAT_TAG_EXISTS:
            raise
    found = existing()  # created meanwhile (a call that timed out after creating it)
    if not found:
        raise ChannelError(WECHAT_TAG_EXISTS, _("The tag name is taken but not listed."), retryable=True)
    return found


def _refused(recipient: str, code, message: str) -> dict:
    return {"recipient": recipient, "code": str(code), "message": str(message)[:200]}


def _apply_wecom(sync, client, tag_id, batch) -> tuple[int, list[dict]]:
    userid, done, refused = sync.settings.get("userid", ""), 0, []
    change = {"add_tag": [tag_id]} if batch.op == SyncOp.ADD else {"remove_tag": [tag_id]}
    for external_userid in batch.recipients:
        try:
            client.mark_tag(userid, external_userid, **change)
        except ChannelError as exc:
            if exc.code != WECOM_NOT_FRIEND:
                raise
            refused.append(_refused(external_userid, exc.code, exc.message))
            continue
        done += 1
    return done, refused


def _apply_wechat(sync, client, tag_id, batch) -> tuple[int, list[dict]]:
    call = client.batch_tagging if batch.op == SyncOp.ADD else client.batch_untagging
    result = call(int(tag_id), list(batch.recipients))
    refused = [
        _refused(openid, failure["code"], failure["message"])
        for failure in result["failed"]
        for openid in failure["openids"]
    ]
    return result["done"], refused


def _phone(sync: AudienceSync, phone_hash: str) -> str | None:
    if not vault.enabled():
        return None
    entry = ContactEntry.objects.filter(
        brand_id=sync.account.brand_id, kind=ContactKind.PHONE, value_hash=phone_hash
    ).first()
    return vault.reveal(entry, purpose=f"audience sync {sync.pk}") if entry else None


def _apply_youzan(sync, client, tag_id, batch) -> tuple[int, list[dict]]:
    call = client.add_tags if batch.op == SyncOp.ADD else client.remove_tags
    done, refused = 0, []
    for phone_hash in batch.recipients:
        phone = _phone(sync, phone_hash)
        if not phone:
            refused.append(_refused(phone_hash, "no_contact", _("The vault holds no number for the person.")))
            continue
        try:
            call([tag_id], "Mobile", [phone])
        except ChannelError as exc:
            raise ChannelError(exc.code, exc.message.replace(phone, "***"), retryable=exc.retryable) from None
        done += 1
    return done, refused


def _apply_weimob(sync, client, tag_id, batch) -> tuple[int, list[dict]]:
    call = client.bind_tags if batch.op == SyncOp.ADD else client.unbind_tags
    wids = [int(wid) for wid in batch.recipients]
    call([tag_id], wids)
    return len(wids), []


#: kind → ``(sync, client, tag id, batch) -> (applied, refused recipients)``.
APPLY = {
    ChannelKind.WECOM: _apply_wecom,
    ChannelKind.WECHAT_MP: _apply_wechat,
    ChannelKind.YOUZAN: _apply_youzan,
    ChannelKind.WEIMOB: _apply_weimob,
}


# processing ------------------------------------------------------------------------
def _finish(batch: SyncBatch, **fields) -> bool:
    """Write ``fields`` if the batch is still ``running`` under our lease."""
    return bool(
        SyncBatch.objects.filter(pk=batch.pk, state=BatchState.RUNNING, lease_until=batch.lease_until).update(
            lease_until=None, **fields
        )
    )


def _advance(sync_id: int, now) -> None:
    """The sync's ``synced_number``: the newest snapshot with no unfinished batch left
    at or before it."""
    batches = SyncBatch.objects.filter(sync_id=sync_id)
    pending = batches.filter(state__in=UNFINISHED).order_by("number").values_list("number", flat=True).first()
    finished = batches.exclude(state__in=UNFINISHED)
    if pending is not None:
        finished = finished.filter(number__lt=pending)
    number = finished.order_by("-number").values_list("number", flat=True).first()
    if number is not None:
        AudienceSync.objects.filter(
            Q(synced_number__isnull=True) | Q(synced_number__lt=number), pk=sync_id
        ).update(synced_number=number, last_updated=now)


def process(batch: SyncBatch, *, now: dt.datetime | None = None) -> str:
    """Apply one claimed batch and answer its state afterwards (a batch no longer
    running under the lease it was claimed with is left alone)."""
    now = now or timezone.now()
    if not SyncBatch.objects.filter(
        pk=batch.pk, state=BatchState.RUNNING, lease_until=batch.lease_until, lease_until__gte=now
    ).exists():
        return "taken"  # finished, or claimed again by another worker once our lease ran out
    sync = batch.sync
    try:
        account = sync.account
        if not account.is_active:
            raise ChannelError("inactive", _("The channel account is not active."), retryable=False)
        client = services.CLIENTS[account.kind](account)
        tag_id = _ensure_tag(sync, client)
        done, refused = APPLY[account.kind](sync, client, tag_id, batch)
    except RateLimited as exc:  # our own limiter: nothing sent, not an attempt
        _finish(
            batch,
            state=BatchState.QUEUED,
            attempts=F("attempts") - 1,
            next_attempt_at=now + dt.timedelta(seconds=float(exc.retry_after or 1)),
            updated=now,
        )
        return BatchState.QUEUED
    except ChannelError as exc:
        return _failed(batch, f"{exc.code}: {exc.message}", exc.retryable, exc.retry_after, now)
    except ValueError as exc:
        return _failed(batch, str(exc), False, None, now)
    except Exception as exc:  # a bug or an outage: tried again, failed in the end
        log.exception("sync batch %s failed", batch.pk)
        return _failed(batch, f"{type(exc).__name__}: {exc}", True, None, now)
    state = BatchState.FAILED if refused and not done else BatchState.DONE
    error = f"{refused[0]['code']}: {refused[0]['message']}" if refused else ""
    if not _finish(
        batch, state=state, done_count=done, rejected=refused, last_error=error[:500], updated=now
    ):
        return "taken"
    counts = {
        "added" if batch.op == SyncOp.ADD else "removed": F("added" if batch.op == SyncOp.ADD else "removed")
        + done
    }
    if refused:
        counts["rejected"] = F("rejected") + len(refused)
        counts["last_error"] = error[:500]
    AudienceSync.objects.filter(pk=sync.pk, queued_number=batch.number).update(**counts)
    _advance(sync.pk, now)
    return state


def _failed(batch: SyncBatch, message: str, retryable: bool, retry_after, now) -> str:
    if retryable and batch.attempts < deliveries.max_attempts():
        wait = deliveries.backoff(batch.attempts)
        if retry_after is not None:
            wait = max(
                wait, min(float(retry_after), float(_setting("TAGPORTAL_DELIVERY_BACKOFF_MAX_SECONDS", 3600)))
            )
        state, due = BatchState.QUEUED, now + dt.timedelta(seconds=wait)
    else:
        state, due = BatchState.FAILED, batch.next_attempt_at
    if not _finish(batch, state=state, next_attempt_at=due, last_error=message[:500], updated=now):
        return "taken"
    AudienceSync.objects.filter(pk=batch.sync_id).update(last_error=message[:500], last_updated=now)
    if state == BatchState.FAILED:
        _advance(batch.sync_id, now)
    return state


def run_due(limit: int | None = None, *, now: dt.datetime | None = None, budget: float | None = None) -> dict:
    """Claim and apply due batches until none is due or ``budget`` seconds
    (``TAGPORTAL_SYNC_TASK_SECONDS``) have passed; the counts of the states reached."""
    limit = limit or int(_setting("TAGPORTAL_SYNC_BATCH", 20))
    budget = budget if budget is not None else float(_setting("TAGPORTAL_SYNC_TASK_SECONDS", 50))
    started, counts = time.monotonic(), {}
    while True:
        batch = claim_due(limit, now=now)
        for row in batch:
            state = process(row, now=now)
            counts[state] = counts.get(state, 0) + 1
        # not ``len(batch) < limit``: a batch done may free its sync's next snapshot
        if not batch or time.monotonic() - started > budget:
            return counts
