"""Realtime tags: one event re-evaluates the realtime tags of its one person.

:func:`ingest_event` takes one checked behaviour event (the API checks the payload
with :class:`.api.RealtimeEventSerializer`), writes it (idempotent on its
``client_id``; an identity nobody holds yet creates a person through the profiles
service, so the event is never lost) and, in the same transaction, calls
:func:`reevaluate`, which re-evaluates the brand's published tags whose refresh mode
is *realtime* for that person only:

1. the person is locked (``SELECT ... FOR NO KEY UPDATE``), so two events of one
   person are evaluated one after the other and the second sees the first;
2. the brand's realtime tags come from a per-process cache
   (:mod:`.realtime_specs`);
3. only that person's rows are read (:mod:`.realtime_loading`): their profile
   attributes, and their events and orders within the widest window the realtime
   tags need, with only the columns the tags read;
4. the stored results of the realtime tags and of the other tags they read are read
   (:mod:`.realtime_storing`: two queries; deserialized bitmaps are cached per
   process): tags read that are not realtime themselves (batch or manual tags) give
   the person's stored values (``known``);
5. :func:`.evaluate.evaluate_tags` runs on ``population=[oneid]``;
6. only when a value changed are the results of the tags concerned locked and their
   bitmaps, counts and numbers updated in place (:func:`.realtime_storing.store_new_values`),
   so :func:`.results.values_for` answers the new value at once.

The event, the person it may have created and the bitmap updates commit together or
not at all.

Known limits:

- a batch computation of a realtime tag that loaded its data before some events
  arrived swaps in a result without those events' changes; the people concerned are
  corrected at their next event (or by the next computation);
- after a realtime tag is republished, realtime updates apply the new rules to the
  people who send events while the stored result keeps the old result version until
  a computation rebuilds it;
- number tags keep every person's number in one compressed array, rewritten on each
  change (~1 ms per 20,000 people): fine for realtime number tags over a few hundred
  thousand people, costly beyond;
- imported events and orders (the profiles import) do not re-evaluate realtime
  tags: a computation of the brand's tags brings them up to date.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog.models import Brand
from tagportal.core.permissions import may_add_into
from tagportal.profiles import pii
from tagportal.profiles import services as profile_services
from tagportal.profiles.models import Customer, Event, Identity

from . import realtime_storing as storing
from . import services
from .evaluate import evaluate_tags
from .realtime_loading import person_frames
from .realtime_specs import RealtimeSpecs, realtime_specs
from .realtime_storing import Outcome, TagChange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckedIdentity:
    """Who an event is about: an identity type, its normalised value and (WeChat
    openids) its app."""

    type: str
    value: str
    app: str = ""


@dataclass(frozen=True)
class CheckedEvent:
    """A behaviour event whose fields were checked (by :class:`.api.RealtimeEventSerializer`)."""

    client_id: str
    type: str
    time: dt.datetime
    identity: CheckedIdentity
    channel: str = ""
    store: str = ""
    value: float | None = None
    properties: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Re-evaluating one person


def reevaluate(
    brand,
    customer,
    *,
    as_of: dt.datetime | None = None,
    person_created: bool = False,
    lock_person: bool = True,
) -> tuple[list[TagChange], dict[str, str]]:
    """Re-evaluate the brand's realtime tags for one person (a Customer, active, of the
    brand) and store the values that changed. Answers the changes and the tags that
    could not be evaluated (``{code: why}``; they keep their stored value).

    ``person_created``: the person did not exist before (counted into the stored
    results' population). ``lock_person``: lock the person first (a caller that
    already holds the lock passes False). Runs in the caller's transaction (or its
    own)."""
    brand = services.resolve_brand(brand)
    realtime = realtime_specs(brand)
    failed = dict(realtime.errors)
    if not realtime.tags:
        return [], failed
    as_of = as_of or timezone.now()
    oneid = int(customer.oneid)
    with transaction.atomic(savepoint=False):
        if lock_person:
            list(Customer.objects.select_for_update(no_key=True).filter(pk=customer.pk).values_list("pk"))
        outcomes, current = _evaluate_person(brand, customer, realtime, as_of, failed)
        changes, skipped = storing.store_new_values(realtime, oneid, outcomes, current, person_created)
    for tag_id, message in skipped.items():
        failed[realtime.tags[tag_id].code] = message
    if len(failed) > len(realtime.errors):
        log.warning("realtime tags of %s failed for OneID %s: %s", brand.code, oneid, failed)
    return changes, failed


def _evaluate_person(
    brand: Brand, customer, realtime: RealtimeSpecs, as_of: dt.datetime, failed: dict[str, str]
) -> tuple[dict[int, Outcome], dict[int, storing.StoredResult]]:
    """The person's new value of each realtime tag (by tag id) and the tags' stored
    results; the tags that fail go to ``failed``."""
    oneid = int(customer.oneid)
    frames = person_frames(brand, customer, realtime, as_of)
    current, read = storing.current_results(brand, realtime)
    result = evaluate_tags(
        realtime.specs,
        *frames,
        as_of,
        pd.Index([oneid], dtype="int64", name="oneid"),
        known=storing.known_values(oneid, realtime.reads, read),
        validate=False,
    )
    outcomes = {}
    for tag_id, tag in realtime.tags.items():
        series = result.values.get(tag.code)
        if tag.code in result.errors or series is None:
            failed[tag.code] = result.errors.get(tag.code) or _("The tag was not evaluated.")
            continue
        try:
            outcomes[tag_id] = storing.outcome_of(tag.spec, series)
        except (ValueError, TypeError) as exc:
            failed[tag.code] = f"{type(exc).__name__}: {exc}"
    return outcomes, current


# ---------------------------------------------------------------------------
# Ingesting an event


class Ingested(tuple):
    """What :func:`ingest_event` did: unpacks as ``(event, customer, changes)`` and also
    says whether the event was new (``created``; False when its client id was sent
    before), whether it created the person (``person_created``) and which realtime tags
    failed (``failed``: ``{code: why}``)."""

    def __new__(cls, event, customer, changes, *, created=True, person_created=False, failed=None):
        obj = super().__new__(cls, (event, customer, changes))
        obj.created = created
        obj.person_created = person_created
        obj.failed = dict(failed or {})
        return obj

    @property
    def event(self):
        return self[0]

    @property
    def customer(self):
        return self[1]

    @property
    def changes(self) -> list[TagChange]:
        return self[2]


def active_customer(customer):
    """The person a (possibly merged) customer now is."""
    for _step in range(20):
        if customer.merged_into_id is None:
            return customer
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def _existing_event(brand: Brand, client_id: str) -> Ingested | None:
    """What ingesting the brand's event ``client_id`` did, when it was sent before."""
    found = list(
        Event.objects.filter(brand=brand, client_id=client_id).order_by().values_list("pk", flat=True)[:1]
    )
    if not found:
        return None
    event = Event.objects.select_related("customer").get(pk=found[0])
    return Ingested(event, active_customer(event.customer), [], created=False)


def _lock_person_holding(brand: Brand, identity: CheckedIdentity):
    """``(customer, identity id, created)``: the person holding the identity, locked; a
    new person when nobody holds it (through the profiles service)."""
    value_hash = pii.hash_value(identity.type, identity.value)
    found = next(
        iter(
            Identity.objects.filter(brand=brand, type=identity.type, app=identity.app, value_hash=value_hash)
            .order_by()
            .values_list("pk", "customer_id")[:1]
        ),
        None,
    )
    created = False
    if found is None:
        links = pd.DataFrame(
            {"record": [0], "type": [identity.type], "app": [identity.app], "value": [identity.value]}
        )
        resolved = profile_services.resolve_identities(brand, links, reason=_("Realtime event"))
        record = resolved.records.iloc[0]
        identity_id = None if pd.isna(record["identity_id"]) else int(record["identity_id"])
        found = (identity_id, int(record["customer_id"]))
        created = resolved.customers_created > 0
    identity_id, customer_id = found
    # FOR NO KEY UPDATE: events of one person queue here; inserting events (which take
    # a KEY SHARE lock on their customer) is not blocked.
    customer = Customer.objects.select_for_update(no_key=True).get(pk=customer_id)
    if customer.merged_into_id is not None:
        customer = active_customer(customer)
        customer = Customer.objects.select_for_update(no_key=True).get(pk=customer.pk)
    return customer, identity_id, created


def _write_event(brand: Brand, checked: CheckedEvent, customer, identity_id) -> Event:
    """Write the event with the profiles service that writes imported events."""
    row = pd.DataFrame(
        {
            "customer_id": [customer.pk],
            "identity_id": pd.array([identity_id], dtype="Int64"),
            "client_id": [checked.client_id],
            "type": [checked.type],
            "channel": [checked.channel],
            "store": [checked.store],
            "value": [np.nan if checked.value is None else checked.value],
            "time": pd.DatetimeIndex([checked.time]),
            "properties": [checked.properties],
        }
    )
    profile_services.write_events(brand, row)
    return Event.objects.get(brand=brand, client_id=checked.client_id)


def ingest_event(brand, checked: CheckedEvent, user=None) -> Ingested:
    """Write one checked behaviour event, then re-evaluate the realtime tags of its
    person (see the module docstring). Answers ``(event, customer, changes)``
    (:class:`Ingested`); an event whose ``client_id`` the brand already has is not
    written again and changes nothing (``created`` is False).

    With ``user``, the user needs ``profiles.add_event`` and a grant to change the
    brand."""
    brand = services.resolve_brand(brand)
    if user is not None and not may_add_into(user, Event, brand):
        raise PermissionDenied(_("You may not send events to the brand “%(brand)s”.") % {"brand": brand})
    existing = _existing_event(brand, checked.client_id)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            customer, identity_id, person_created = _lock_person_holding(brand, checked.identity)
            event = _write_event(brand, checked, customer, identity_id)
            changes, failed = reevaluate(brand, customer, person_created=person_created, lock_person=False)
    except IntegrityError:
        existing = _existing_event(brand, checked.client_id)  # the same event, sent twice at once
        if existing is None:
            raise
        return existing
    return Ingested(event, customer, changes, created=True, person_created=person_created, failed=failed)
