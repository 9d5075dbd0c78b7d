"""The roles, as groups with model permissions. Grants (which business lines,
brands and tags a person reaches) are separate: see :mod:`tagportal.core.permissions`."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

OPERATOR = "operator"
STEWARD = "data_steward"
ANALYST = "analyst"
ADMIN = "admin"
API_CLIENT = "api_client"

_VIEW_DICTIONARY = [
    "catalog.view_businessline",
    "catalog.view_brand",
    "catalog.view_region",
    "catalog.view_category",
    "catalog.view_namingrule",
    "catalog.view_tag",
    "catalog.view_tagversion",
]

_VIEW_LINEAGE = ["lineage.view_datasource", "lineage.view_datafield"]

_VIEW_PROFILES = [
    "profiles.view_customer",
    "profiles.view_identity",
    "profiles.view_event",
    "profiles.view_order",
    "profiles.view_mergerecord",
    "profiles.view_importjob",
]
_VIEW_RESULTS = [
    "engine.view_tagcomputation",
    "engine.view_tagrun",
    "engine.view_tagvaluebitmap",
    "usage.view_tagusage",
    "governance.view_report",
]
_VIEW_MODELS = ["predictive.view_predictivemodel", "predictive.view_modeloutput", "predictive.view_modelrun"]
_MANAGE_MODELS = [
    *_VIEW_MODELS,
    "predictive.add_predictivemodel",
    "predictive.change_predictivemodel",
    "predictive.run_predictivemodel",
]
_VIEW_AUDIENCES = ["audiences.view_audience", "audiences.view_audiencesnapshot"]
_BUILD_AUDIENCES = [
    *_VIEW_AUDIENCES,
    "audiences.add_audience",
    "audiences.change_audience",
    "audiences.export_audience",
]
_VIEW_CHANNELS = [
    "activation.view_channelaccount",
    "activation.view_webhookreceipt",
    "activation.view_send",
    "activation.view_delivery",
]
_MANAGE_CHANNELS = [
    *_VIEW_CHANNELS,
    "activation.add_channelaccount",
    "activation.change_channelaccount",
    "activation.change_delivery",
    "activation.view_deadletter",
    "activation.change_deadletter",
]
#: Sending a message to an audience now (with ``audiences.change_audience`` on it).
_SEND_MESSAGES = ["activation.add_send"]
_SYNC_AUDIENCES = [
    "activation.view_audiencesync",
    "activation.add_audiencesync",
    "activation.change_audiencesync",
    "activation.view_syncbatch",
]
_VIEW_CONSENT = ["activation.view_consent", "activation.view_suppression"]
_MANAGE_CONSENT = [
    *_VIEW_CONSENT,
    "activation.add_consent",
    "activation.change_consent",
    "activation.add_suppression",
    "activation.delete_suppression",
    "activation.add_contactentry",
]
_VIEW_JOURNEYS = [
    "journeys.view_journey",
    "journeys.view_journeyversion",
    "journeys.view_journeyinstance",
    "journeys.view_conversion",
]
#: Drawing journeys, submitting them, pausing and ending them (approval is the stewards').
_BUILD_JOURNEYS = [*_VIEW_JOURNEYS, "journeys.add_journey", "journeys.change_journey"]
_MANAGE_LINEAGE = [
    *_VIEW_LINEAGE,
    "lineage.add_datasource",
    "lineage.change_datasource",
    "lineage.delete_datasource",
    "lineage.add_datafield",
    "lineage.change_datafield",
    "lineage.delete_datafield",
]

ROLES: dict[str, dict] = {
    OPERATOR: {
        "label": _("Operator"),
        "description": _("Browses the dictionary and proposes tags and changes in their business lines."),
        "permissions": [
            *_VIEW_DICTIONARY,
            *_VIEW_LINEAGE,
            *_VIEW_RESULTS,
            "catalog.add_tag",
            "catalog.change_tag",
            "governance.view_changerequest",
            "governance.add_changerequest",
            "governance.change_changerequest",
            *_VIEW_PROFILES,
            *_BUILD_AUDIENCES,
            *_SYNC_AUDIENCES,
            "audiences.export_identities",
            *_VIEW_MODELS,
            *_VIEW_CHANNELS,
            *_SEND_MESSAGES,
            *_VIEW_CONSENT,
            *_BUILD_JOURNEYS,
        ],
    },
    STEWARD: {
        "label": _("Data steward"),
        "description": _("Reviews changes, keeps the dictionary clean, owns naming rules and templates."),
        "permissions": [
            *_VIEW_DICTIONARY,
            "catalog.add_tag",
            "catalog.change_tag",
            "catalog.delete_tag",
            "catalog.add_category",
            "catalog.change_category",
            "catalog.add_namingrule",
            "catalog.change_namingrule",
            "catalog.add_region",
            "catalog.change_region",
            "catalog.apply_template",
            "catalog.review_businessline",
            "governance.view_changerequest",
            "governance.add_changerequest",
            "governance.change_changerequest",
            "governance.review_changerequest",
            "governance.view_auditevent",
            *_MANAGE_LINEAGE,
            *_VIEW_RESULTS,
            "engine.run_compute",
            "governance.run_report",
            *_VIEW_PROFILES,
            "profiles.add_importjob",
            *_BUILD_AUDIENCES,
            *_SYNC_AUDIENCES,
            "audiences.export_identities",
            "audiences.approve_repin",
            *_MANAGE_MODELS,
            *_MANAGE_CHANNELS,
            *_SEND_MESSAGES,
            *_MANAGE_CONSENT,
            *_BUILD_JOURNEYS,
            "journeys.approve_journey",
            "journeys.view_contactpolicy",
            "journeys.add_contactpolicy",
            "journeys.change_contactpolicy",
        ],
    },
    ANALYST: {
        "label": _("Analyst"),
        "description": _("Reads the dictionary and dashboards; changes nothing."),
        "permissions": [
            *_VIEW_DICTIONARY,
            *_VIEW_LINEAGE,
            *_VIEW_RESULTS,
            "governance.view_changerequest",
            *_VIEW_PROFILES,
            *_VIEW_AUDIENCES,
            *_VIEW_MODELS,
            *_VIEW_JOURNEYS,
        ],
    },
    API_CLIENT: {
        "label": _("API client"),
        "description": _(
            "A service account (a CRM sync, a store system) that reads tag values and looks people "
            "up by the identity values it already holds."
        ),
        "permissions": [
            *_VIEW_DICTIONARY,
            *_VIEW_RESULTS,
            *_VIEW_PROFILES,
            "profiles.lookup_identity",
        ],
    },
    ADMIN: {
        "label": _("Admin"),
        "description": _("Everything, including users and permissions, in every business line."),
        "permissions": "__all__",
    },
}

#: Apps whose every permission the admin role holds.
ADMIN_APPS = (
    "core",
    "usage",
    "notifications",
    "catalog",
    "governance",
    "lineage",
    "profiles",
    "auth",
    "authtoken",
    "guardian",
    "engine",
    "audiences",
    "predictive",
    "activation",
    "journeys",
    "django_celery_beat",
    "axes",  # failed logins and lockouts: an admin lifts one by deleting the attempt
)


def _permissions(names):
    query = Q()
    for name in names:
        app_label, codename = name.split(".")
        query |= Q(content_type__app_label=app_label, codename=codename)
    found = list(Permission.objects.filter(query)) if names else []
    missing = set(names) - {f"{p.content_type.app_label}.{p.codename}" for p in found}
    if missing:
        raise LookupError(f"unknown permissions: {sorted(missing)}")
    return found


def ensure_roles() -> dict[str, Group]:
    """Create the role groups and set their permissions (idempotent)."""
    groups = {}
    for name, role in ROLES.items():
        group, _created = Group.objects.get_or_create(name=name)
        if role["permissions"] == "__all__":
            perms = Permission.objects.filter(content_type__app_label__in=ADMIN_APPS)
        else:
            perms = _permissions(role["permissions"])
        group.permissions.set(perms)
        groups[name] = group
    return groups


def reviewers_of(business_line, exclude=None) -> list:
    """The data stewards who may approve changes in a business line: active holders of
    ``review`` on it (directly or through a group) whose role reviews change requests."""
    from guardian.shortcuts import get_users_with_perms

    holders = get_users_with_perms(
        business_line,
        only_with_perms_in=["review_businessline"],
        with_group_users=True,
        with_superusers=False,
    )
    users = [u for u in holders if u.is_active and u.has_perm("governance.review_changerequest")]
    if exclude is not None:
        users = [u for u in users if u.pk != exclude.pk]
    return users
