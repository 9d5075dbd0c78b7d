"""Shared set-up for the governance tests: the ``world`` of tests/conftest.py plus a
second steward of the own line, a steward and an operator of the other line, e-mail
addresses for everyone, and the two world tags published as version 1."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db.models import Value
from django.db.models.functions import Concat

from tagportal.catalog import services as catalog
from tagportal.catalog.models import Tag
from tagportal.core.models import User
from tagportal.core.roles import OPERATOR, STEWARD
from tagportal.governance import services as gov
from tagportal.governance.choices import RequestState
from tagportal.governance.models import AuditEvent, ChangeItem, ChangeRequest, Comment
from tagportal.governance.services import ItemSpec
from tagportal.notifications.models import Notification

from ..factories import TagFactory, UserFactory

CR_URL = "/api/governance/change-requests/"

#: A yes/no behaviour rule (valid for a boolean tag).
BOOL_DEF = {
    "type": "condition",
    "condition": {
        "metric": {"agg": "count", "source": "orders", "window": {"last_days": 30}},
        "op": "gte",
        "value": 2,
    },
}


def metric_def(days: int = 90) -> dict:
    """The number rule of the factory tags, with another window."""
    return {
        "type": "metric",
        "metric": {
            "agg": "count",
            "source": "events",
            "where": [{"field": "type", "op": "eq", "value": "store_visit"}],
            "window": {"last_days": days},
        },
    }


def reads(code: str) -> dict:
    """A composite rule reading the yes/no tag ``code``."""
    return {"type": "condition", "condition": {"tag": code, "op": "eq", "value": True}}


def draft_tag(brand, category, suffix: str, **fields) -> Tag:
    """A valid draft number tag whose code (``<line>_<category>_<suffix>``) follows the naming rule."""
    fields.setdefault("code", f"{brand.business_line.code}_{category.code}_{suffix}")
    return TagFactory(brand=brand, category=category, **fields)


def bool_tag(brand, category, suffix: str, **fields) -> Tag:
    return draft_tag(brand, category, suffix, value_type="boolean", values=[], definition=BOOL_DEF, **fields)


def composite_tag(brand, category, suffix: str, reads_code: str, **fields) -> Tag:
    return draft_tag(
        brand,
        category,
        suffix,
        kind="composite",
        value_type="boolean",
        values=[],
        definition=reads(reads_code),
        **fields,
    )


def publish(tag: Tag, user=None) -> Tag:
    catalog.publish_tag(tag, user=user)
    tag.refresh_from_db()
    return tag


def fresh(obj):
    obj.refresh_from_db()
    return obj


def update_spec(tag: Tag, **changes) -> ItemSpec:
    return ItemSpec("update", tag, changes or {"description": "近90天到店次数（含预约到店）"})


def reviewer_for(w, proposer):
    """A steward of the own line who is not ``proposer``."""
    return w.steward2 if proposer.pk == w.steward.pk else w.steward


def request_in_state(w, state: str, proposer=None, specs=None) -> ChangeRequest:
    """A change request (by default an update of the published own tag) brought to ``state``."""
    proposer = proposer or w.operator
    reviewer = reviewer_for(w, proposer)
    cr = gov.propose(proposer, specs or [update_spec(w.own_tag)])
    if state == RequestState.DRAFT:
        return fresh(cr)
    if state == RequestState.WITHDRAWN:
        return fresh(gov.withdraw(proposer, cr))
    gov.submit(proposer, cr)
    if state == RequestState.SUBMITTED:
        pass
    elif state == RequestState.CHANGES_REQUESTED:
        gov.request_changes(reviewer, cr, "请补充口径说明")
    elif state == RequestState.REJECTED:
        gov.reject(reviewer, cr, "重复标签")
    elif state == RequestState.APPROVED:
        gov.approve(reviewer, cr, "同意")
    elif state == RequestState.APPLIED:
        gov.approve(reviewer, cr, "同意", apply_now=True)
    else:  # pragma: no cover - a typo in a test
        raise ValueError(state)
    return fresh(cr)


def governance_state() -> tuple:
    """Row counts that a refused request must leave as they were."""
    return (
        ChangeRequest.objects.count(),
        ChangeItem.objects.count(),
        Comment.objects.count(),
        AuditEvent.objects.count(),
        Notification.objects.count(),
        Tag.objects.count(),
        Tag.history.count(),
    )


@pytest.fixture
def gw(world):
    """``world`` with the own and other tags published (v1), more users, and e-mail addresses."""
    w = world
    # The same grants as UserFactory(grants=...) gives, by joining the business lines'
    # groups directly (re-assigning their object permissions for each user is slow).
    groups = {
        (line.pk, member): Group.objects.get(name=catalog.business_line_group_name(line, member))
        for line, member in ((w.own_line, "stewards"), (w.own_line, "operators"))
    }  # made by the world's grants
    for member, group in catalog.ensure_business_line_groups(w.other_line).items():
        groups[(w.other_line.pk, member)] = group
    for name, username, role, line, member in (
        ("steward2", "st2", STEWARD, w.own_line, "stewards"),
        ("operator2", "op2", OPERATOR, w.own_line, "operators"),
        ("other_steward", "st_other", STEWARD, w.other_line, "stewards"),
        ("other_operator", "op_other", OPERATOR, w.other_line, "operators"),
    ):
        user = UserFactory(username=username, role=role)
        user.groups.add(groups[(line.pk, member)])
        setattr(w, name, user)
    User.objects.update(email=Concat("username", Value("@tagportal.test")))
    for name in (
        "operator", "steward", "analyst", "admin", "nobody",
        "steward2", "operator2", "other_steward", "other_operator",
    ):  # fmt: skip
        user = getattr(w, name)
        user.email = f"{user.username}@tagportal.test"
    w.own_tag = publish(w.own_tag, user=w.admin)
    w.other_tag = publish(w.other_tag, user=w.admin)
    return w
