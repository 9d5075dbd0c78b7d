"""Permission scoping: the one place that decides what a user may see and do.

A user's **role** (a group such as operator or data steward) carries Django model
permissions: *which actions* they may take on *which kinds* of object. Their
**grants** (django-guardian object permissions, given to groups or users on a
business line, a brand or a single tag) say *which objects* those actions reach.
A grant on a business line covers its brands and their tags; a grant on a brand
covers its tags. Both are needed: an analyst granted a business line can view its
tags but not change them, an operator with no grant sees no tags.

Superusers, and users holding ``core.unrestricted`` (the admin role), reach every
object their model permissions allow.

Models opt in by declaring ``scope``: a list of :class:`Via` entries naming the
granted model and the lookup from the scoped model to it. Everything else that
needs scoping (the admin, the pages, the API) calls
``Model.objects.restrict(user, action)`` (or :func:`may` for one object), which
call :func:`scope_filter` and read its answer with :func:`apply_scope`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.apps import apps
from django.db.models import Model, Q, QuerySet

#: ``review`` is approving changes (granted on business lines to their stewards).
ACTIONS = ("view", "add", "change", "delete", "review")


@dataclass(frozen=True)
class Via:
    """A path from a scoped model to a model that grants are given on.

    ``lookup`` is a field path (``"brand"``, ``"pk"``) or a callable that turns the
    subquery of granted primary keys into a ``Q``. ``actions`` limits the entry to
    some actions (e.g. seeing a business line because one of its brands is granted).
    """

    grant_model: str
    lookup: str | Callable[[QuerySet], Q]
    actions: frozenset[str] = field(default_factory=lambda: frozenset(ACTIONS))


def tag_scope(path: str = "tag") -> list[Via]:
    """The scope of a model that belongs to a tag (``path`` leads to it): grants on the
    tag's business line, its brand or the tag itself."""
    return [
        Via("catalog.businessline", f"{path}__business_line"),
        Via("catalog.brand", f"{path}__brand"),
        Via("catalog.tag", path),
    ]


def grant_codename(grant_model: type[Model], action: str) -> str:
    """The object permission that grants ``action`` through ``grant_model``.

    Adding an object into a container (a tag into a brand) needs ``change`` on it.
    """
    grant_action = "change" if action == "add" else action
    return f"{grant_action}_{grant_model._meta.model_name}"


def model_permission(model: type[Model], action: str) -> str:
    return f"{model._meta.app_label}.{action}_{model._meta.model_name}"


def is_unrestricted(user) -> bool:
    return bool(user.is_superuser or user.has_perm("core.unrestricted"))


def granted_pks(user, grant_model: type[Model], action: str) -> tuple[QuerySet, QuerySet]:
    """Subqueries of the primary keys of ``grant_model`` objects granted to ``user``
    (directly and through the user's groups) for ``action``."""
    from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

    codename = grant_codename(grant_model, action)
    user_model = get_user_obj_perms_model(grant_model)
    group_model = get_group_obj_perms_model(grant_model)
    by_user = user_model.objects.filter(user_id=user.pk, permission__codename=codename)
    by_group = group_model.objects.filter(group__user=user.pk, permission__codename=codename)
    value = "content_object_id" if _is_direct(user_model) else "object_pk"
    return by_user.values(value), by_group.values(value)


def _is_direct(perm_model) -> bool:
    return any(f.name == "content_object" and f.is_relation for f in perm_model._meta.get_fields())


def scope_filter(user, model: type[Model], action: str = "view", check_model_permission: bool = True):
    """What ``user`` may ``action`` among ``model`` objects.

    Returns ``None`` (no restriction), ``False`` (nothing) or a ``Q``: apply it to a
    queryset with :func:`apply_scope`, the one place that tells them apart.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if check_model_permission and not user.has_perm(model_permission(model, action)):
        return False
    if is_unrestricted(user):
        return None
    scope = getattr(model, "scope", None)
    if scope is None:  # a shared dictionary (regions, categories): model permissions alone
        return None
    condition = Q(pk__in=[])
    for via in scope:
        if action not in via.actions:
            continue
        grant_model = apps.get_model(via.grant_model)
        for subquery in granted_pks(user, grant_model, action):
            if callable(via.lookup):
                condition |= via.lookup(subquery)
            else:
                condition |= Q(**{f"{via.lookup}__in": subquery})
    return condition


def apply_scope(queryset: QuerySet, condition) -> QuerySet:
    """``queryset`` narrowed by a :func:`scope_filter` result: the one place that reads it.

    ``None`` restricts nothing and answers ``queryset`` itself (the same object, so a
    caller can tell that no query is needed), ``False`` answers an empty queryset (which
    runs no query), a ``Q`` filters.
    """
    if condition is None:
        return queryset
    if condition is False:
        return queryset.none()
    return queryset.filter(condition)


def may(user, obj: Model, action: str, check_model_permission: bool = True) -> bool:
    """Whether ``user`` may ``action`` this object (one query at most, none when the
    user's scope does not restrict)."""
    one = type(obj)._default_manager.filter(pk=obj.pk)
    scoped = apply_scope(one, scope_filter(user, type(obj), action, check_model_permission))
    return scoped is one or scoped.exists()


def may_add_into(user, model: type[Model], container: Model) -> bool:
    """Whether ``user`` may create a ``model`` object inside ``container`` (a brand)."""
    if not user.is_authenticated or not user.has_perm(model_permission(model, "add")):
        return False
    return may(user, container, "add", check_model_permission=False)


def containers_for_add(user, model: type[Model], container_model: type[Model]) -> QuerySet:
    """The containers (brands) ``user`` may create ``model`` objects in."""
    manager = container_model._default_manager
    if not user.is_authenticated or not user.has_perm(model_permission(model, "add")):
        return manager.none()
    return manager.all().restrict(user, "add", check_model_permission=False)
