"""What the journey editor's page gives its script: the pickers (the brand's audiences,
tags and their values, event types, channel accounts and the content each channel kind
takes) and the words it shows, and how the server's validation messages are put beside
the nodes they are about."""

from __future__ import annotations

import re

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext

from tagportal.activation import sends as activation_sends
from tagportal.activation.choices import ChannelKind
from tagportal.activation.models import ChannelAccount
from tagportal.audiences.models import Audience
from tagportal.catalog.choices import TagKind, TagStatus, ValueType
from tagportal.catalog.models import Tag
from tagportal.profiles.schema import event_types

from . import graph as graph_rules

#: Channel kinds whose customer tags a journey can set (as :mod:`.graph` checks).
SYNC_KINDS = (ChannelKind.WECOM, ChannelKind.WECHAT_MP, ChannelKind.YOUZAN, ChannelKind.WEIMOB)

EVENT_LABELS = {
    "page_view": gettext_lazy("Page view"),
    "product_view": gettext_lazy("Product view"),
    "search": gettext_lazy("Search"),
    "add_to_cart": gettext_lazy("Add to cart"),
    "purchase": gettext_lazy("Purchase"),
    "refund": gettext_lazy("Refund"),
    "store_visit": gettext_lazy("Store visit"),
    "consultation": gettext_lazy("Consultation"),
    "appointment": gettext_lazy("Appointment"),
    "treatment": gettext_lazy("Treatment"),
    "follow_up": gettext_lazy("Follow-up"),
    "coupon_received": gettext_lazy("Coupon received"),
    "coupon_used": gettext_lazy("Coupon used"),
    "sample_request": gettext_lazy("Sample request"),
    "check_in": gettext_lazy("Check-in"),
    "sign_in": gettext_lazy("Daily sign-in"),
    "wecom_add": gettext_lazy("Added on WeCom"),
    "wecom_chat": gettext_lazy("WeCom chat"),
    "wecom_delete": gettext_lazy("Deleted on WeCom"),
    "live_view": gettext_lazy("Live stream view"),
    "content_view": gettext_lazy("Content view"),
    "content_like": gettext_lazy("Content like"),
    "content_share": gettext_lazy("Content share"),
    "review": gettext_lazy("Product review"),
    "survey": gettext_lazy("Survey"),
    "subscribe": gettext_lazy("Subscribe"),
    "unsubscribe": gettext_lazy("Unsubscribe"),
    "member_join": gettext_lazy("Member joined"),
    "points_redeem": gettext_lazy("Points redeemed"),
    "complaint": gettext_lazy("Complaint"),
    "message_clicked": gettext_lazy("Message clicked"),
    "message_read": gettext_lazy("Message read"),
}

#: The journey's own feedback events are not offered as triggers.
HIDDEN_EVENTS = ("journey_entered", "journey_exited", "journey_converted")


def event_options() -> list[dict]:
    codes = sorted(set(event_types()) | {"message_clicked", "message_read"})
    rows = []
    for code in codes:
        if code in HIDDEN_EVENTS:
            continue
        label = EVENT_LABELS.get(code)
        rows.append({"code": code, "label": f"{label}（{code}）" if label else code})
    return rows


def _values(tag: Tag) -> list[dict]:
    if tag.value_type == ValueType.BOOLEAN and not tag.values:
        return [{"code": "true", "label": _("yes")}, {"code": "false", "label": _("no")}]
    return [
        {"code": str(v.get("code")), "label": str(v.get("label") or v.get("code"))}
        for v in tag.values or []
        if isinstance(v, dict) and v.get("code") is not None
    ]


def catalog(user, brands) -> dict:
    """The pickers for ``brands`` (what ``user`` may view of them)."""
    brand_ids = [b.pk for b in brands]
    audiences = Audience.objects.restrict(user, "view").filter(brand_id__in=brand_ids).order_by("name", "pk")
    tags = (
        Tag.objects.restrict(user, "view")
        .filter(brand_id__in=brand_ids)
        .exclude(status=TagStatus.RETIRED)
        .order_by("name", "pk")
    )
    accounts = (
        ChannelAccount.objects.restrict(user, "view")
        .filter(brand_id__in=brand_ids, is_active=True)
        .order_by("kind", "name", "pk")
    )
    kinds = dict(ChannelKind.choices)
    return {
        "brand_lines": {str(b.pk): b.business_line_id for b in brands},
        "audiences": [{"id": a.pk, "name": a.name, "brand": a.brand_id} for a in audiences],
        "tags": [
            {
                "code": t.code,
                "name": t.name,
                "brand": t.brand_id,
                "manual": t.kind == TagKind.MANUAL,
                "values": _values(t),
            }
            for t in tags
        ],
        "events": event_options(),
        "accounts": [
            {
                "id": a.pk,
                "name": a.name,
                "kind": a.kind,
                "kind_label": str(kinds.get(a.kind, a.kind)),
                "brand": a.brand_id,
                "sync_required": graph_rules.sync_required(a.kind, a.settings),
            }
            for a in accounts
        ],
        "send_kinds": [k for k in ChannelKind.values if activation_sends.sendable(k)],
        "sync_kinds": list(SYNC_KINDS),
        "sync_fields": {
            kind: [{"name": name, "label": str(graph_rules.SYNC_FIELD_LABELS[name])} for name, _req in fields]
            for kind, fields in graph_rules.SYNC_FIELDS.items()
        },
        "content": {
            kind: {"required": list(req), "optional": list(opt), "mapping": mapping, "list": listing}
            for kind, (req, opt, mapping, listing) in activation_sends.CONTENT.items()
        },
        "field_labels": {k: str(v) for k, v in activation_sends.FIELD_LABELS.items()},
    }


def strings() -> dict[str, str]:
    """The words of the editor's script, in the user's language."""
    words = {
        "type_entry": _("Entry"),
        "type_wait": _("Wait"),
        "type_branch": _("Branch by tag"),
        "type_split": _("Random split"),
        "type_holdout": _("Holdout"),
        "type_send": _("Send message"),
        "type_sync_tag": _("Sync channel tag"),
        "type_set_tag": _("Set tag"),
        "type_exit": _("Exit"),
        "port_next": pgettext("journey port", "next"),
        "port_happened": pgettext("journey port", "happened"),
        "port_timeout": pgettext("journey port", "timed out"),
        "port_else": pgettext("journey port", "other"),
        "port_treatment": pgettext("journey port", "treatment"),
        "port_holdout": pgettext("journey port", "holdout"),
        "one_entry": _("A journey has one entry node only."),
        "no_self": _("A node cannot lead to itself."),
        "no_into_entry": _("The entry node has no way in."),
        "connect_hint": _("Drag to a node, or click and then click the node, to connect this way out."),
        "pick_target": _("Now click the node this way out leads to (Esc cancels)."),
        "connection": _("Connection"),
        "remove_connection": _("Remove connection"),
        "remove_node": _("Remove node"),
        "remove": _("Remove"),
        "goal": _("Journey goal"),
        "panel_hint": _(
            "Pick a node type on the left to add it, drag nodes to arrange them, and connect a node's "
            "ways out (at its bottom) to the next node. Click a node to set it up."
        ),
        "label": _("Name on the canvas"),
        "optional": _("optional"),
        "choose": _("— choose —"),
        "trigger": _("People enter when"),
        "trigger_audience": _("they join an audience"),
        "trigger_tag": _("their tag takes a value"),
        "trigger_event": _("they do something (an event)"),
        "trigger_schedule": _("on a schedule (an audience's members)"),
        "audience": _("Audience"),
        "audience_help": _("People who join the audience after the journey goes live enter it."),
        "tag": _("Tag"),
        "value": _("Value"),
        "name": _("Name"),
        "tag_help": _("People whose value becomes this one enter."),
        "event": _("Event type"),
        "order": _("An order"),
        "repeat": _("Runs"),
        "once": _("once"),
        "daily": _("every day"),
        "weekly": _("every week"),
        "once_at": _("Date and time"),
        "at_time": _("Time of day"),
        "weekday": _("Day of the week"),
        "weekday_0": _("Sunday"),
        "weekday_1": _("Monday"),
        "weekday_2": _("Tuesday"),
        "weekday_3": _("Wednesday"),
        "weekday_4": _("Thursday"),
        "weekday_5": _("Friday"),
        "weekday_6": _("Saturday"),
        "beijing_time": _("In Beijing time."),
        "reentry": _("Re-entry"),
        "reentry_never": _("never: once per person"),
        "reentry_after": _("again after some days"),
        "reentry_days": _("Days before entering again"),
        "wait_mode": _("Wait"),
        "wait_for": _("for a while"),
        "wait_until": _("until a time of day"),
        "wait_event": _("for an event"),
        "until_help": _("Beijing time; the next such time after arriving."),
        "within": _("At most"),
        "within_help": _("People who do not do it by then take the “timed out” way."),
        "minutes": pgettext("duration unit", "minutes"),
        "hours": pgettext("duration unit", "hours"),
        "days": pgettext("duration unit", "days"),
        "amount": _("Amount"),
        "unit": _("Unit"),
        "by_tag": _("By tag"),
        "case": _("Case"),
        "add_case": _("Add a case"),
        "remove_case": _("Remove this case"),
        "pick_tag_first": _("Choose a tag first."),
        "else_help": _("People matching no case take the “other” way."),
        "way": _("Way"),
        "add_way": _("Add a way"),
        "sum": _("Total:"),
        "holdout": _("hold out"),
        "holdout_percent": _("Held out (%)"),
        "holdout_help": _("This share gets no messages: the comparison that measures the journey's uplift."),
        "account": _("Channel account"),
        "pick_account_first": _("Choose a channel account first."),
        "variable_help": _("Write {{tag:code}} to fill in each person's value of that tag."),
        "add_pair": _("Add a field"),
        "param": _("Parameter"),
        "add_param": _("Add a parameter"),
        "use_variants": _("Test variants (A/B)"),
        "variant": _("Variant"),
        "variants_short": _("variants to test"),
        "add_variant": _("Add a variant"),
        "learning": _("Pick the winner by"),
        "learning_significance": _("significance test on clicks"),
        "learning_thompson": _("Thompson sampling on clicks"),
        "channel_tag": _("Tag name on the channel"),
        "channel_tag_help": _("At most 30 characters; made on the platform if missing."),
        "required": _("required"),
        "sync_userid_help": _("The WeCom member whose customers are tagged (their userid)."),
        "sync_userid_default_help": _("Leave empty to tag as the member named on the channel account."),
        "sync_tag_group_help": _(
            "The group the WeCom tag is made in; at most 30 characters (default: the tag name)."
        ),
        "sync_tag_id_help": _("The id of the tag made on Weimob beforehand."),
        "manual_tag": _("Manual tag"),
        "goal_kind": _("Goal"),
        "no_goal": _("no goal"),
        "goal_event": _("an event"),
        "goal_order": _("an order"),
        "window_days": _("Counted within (days)"),
        "goal_from": _("Counted from"),
        "from_entry": _("entering the journey"),
        "from_send": _("the last message"),
        "ends_journey": _("Reaching the goal ends the journey for the person"),
    }
    return words


QUOTED = re.compile(r"“([^”]+)”")


def errors_by_node(graph, errors: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """``({node id: messages}, messages about the journey as a whole)``: a message
    naming a node (by its name on the canvas or its id, in “quotes”) goes beside it."""
    names: dict[str, str] = {}
    for node in (graph or {}).get("nodes") or [] if isinstance(graph, dict) else []:
        if isinstance(node, dict) and isinstance(node.get("id"), str):
            names.setdefault(str(node.get("label") or node["id"]), node["id"])
            names.setdefault(node["id"], node["id"])
    by_node: dict[str, list[str]] = {}
    general: list[str] = []
    for message in errors:
        found = next((names[q] for q in QUOTED.findall(message) if q in names), None)
        if found is None:
            general.append(message)
        else:
            by_node.setdefault(found, []).append(message)
    return by_node, general
