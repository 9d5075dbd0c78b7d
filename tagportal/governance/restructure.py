"""Change requests that restructure the category tree (move, merge or rename a category).

The proposal previews the tags affected with their current and re-suggested codes (one
change item per recoded tag); a data steward of the business line other than the
proposer approves it (four eyes, like every change request), and applying it carries out
the change at once (:func:`tagportal.catalog.restructure.carry_out`): categories changed,
tags recoded through new published versions that compute what the previous ones did,
old codes kept as aliases, the audiences reading a recoded tag renamed to its new code.
Each step is in the audit trail."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils.translation import gettext as _

from tagportal.catalog import restructure as tree
from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Category, Tag
from tagportal.core.permissions import may

from .choices import AuditAction, ChangeKind
from .models import ChangeItem, ChangeRequest


def _category(value, field: str, required: bool = True) -> Category | None:
    if value in (None, ""):
        if required:
            raise ValidationError({field: _("Choose a category.")})
        return None
    if isinstance(value, Category):
        return value
    try:
        return Category.objects.get(pk=int(value))
    except (TypeError, ValueError, Category.DoesNotExist) as exc:
        raise ValidationError({field: _("Unknown category.")}) from exc


def build_preview(operation, source, target=None, new_name="", new_code="") -> tree.Preview:
    return tree.preview(
        operation,
        _category(source, "source"),
        _category(target, "target", required=operation == "merge"),
        new_name,
        new_code,
    )


def _involved(result: tree.Preview) -> list[Tag]:
    """The tags the restructure touches: those of the category and its children, and
    (a merge) those of the category merged into."""
    ids = Category.descendant_ids(result.source.pk)
    if result.operation == "merge" and result.target is not None:
        ids = [*ids, result.target.pk]
    return list(
        Tag.objects.filter(category_id__in=ids).exclude(status=TagStatus.RETIRED).select_related("brand")
    )


def check(user, result: tree.Preview) -> list[Tag]:
    """Refuse a restructure that ``user`` may not propose: tags of another brand or
    business line they may not change, tags of several business lines (categories used
    by different business lines are not merged or moved by one line's steward)."""
    involved = _involved(result)
    if not involved:
        raise ValidationError(
            {"source": _("No tag uses this category: an administrator changes it in the admin directly.")}
        )
    for tag in involved:
        if not may(user, tag, "change"):
            raise PermissionDenied(
                _("The category holds tags of the brand “%(brand)s”, which you may not change.")
                % {"brand": tag.brand}
            )
    if len({tag.business_line_id for tag in involved}) > 1:
        raise ValidationError(
            {
                "target" if result.operation == "merge" else "source": _(
                    "The categories hold tags of several business lines: one business line's change "
                    "request cannot restructure them."
                )
            }
        )
    return involved


def preview_rows(result: tree.Preview) -> list[dict]:
    return result.as_dict()["tags"]


def propose(
    user,
    *,
    operation,
    source,
    target=None,
    new_name="",
    new_code="",
    title="",
    description="",
    submit_now=False,
) -> ChangeRequest:
    """A change request restructuring the category tree, with one item per recoded tag."""
    from . import services

    if user is None or not user.has_perm("governance.add_changerequest"):
        raise PermissionDenied(_("You may not propose changes."))
    result = build_preview(operation, source, target, new_name, new_code)
    involved = check(user, result)
    brands = {tag.brand_id for tag in involved}
    labels = {"move": _("Move"), "merge": _("Merge"), "rename": _("Rename")}
    cr = ChangeRequest(
        title=title
        or _("%(operation)s category %(category)s")
        % {"operation": labels[operation], "category": result.source},
        description=description,
        business_line_id=involved[0].business_line_id,
        brand_id=brands.pop() if len(brands) == 1 else None,
        proposer=user,
        restructure=tree.payload_of(result),
    )
    cr._change_reason = _("Proposed")
    cr.save()
    for position, row in enumerate(result.rows):
        tag = row["tag"]
        ChangeItem.objects.create(
            change_request=cr,
            position=position,
            kind=ChangeKind.RESTRUCTURE,
            tag=tag,
            base_version=tag.published_version,
            changes={"code": row["new_code"], "category": row["category_id"]},
            diff=services.snapshot_diff(
                {"code": row["old_code"], "category": row["old_category"]},
                {"code": row["new_code"], "category": row["new_category"]},
            ),
        )
    services._audit(cr, user, AuditAction.PROPOSED, items=len(result.rows), restructure=cr.restructure)
    if submit_now:
        cr = services.submit(user, cr)
    return cr


def apply(user, cr: ChangeRequest, items: list[ChangeItem], reason: str) -> None:
    """Carry out an approved restructure inside :func:`.services.apply`'s transaction."""
    from tagportal.audiences import services as audiences

    from . import services

    payload = cr.restructure
    try:
        result = build_preview(
            payload.get("operation"),
            payload.get("source"),
            payload.get("target"),
            payload.get("new_name", ""),
            payload.get("new_code", ""),
        )
    except ValidationError as exc:
        raise services.StaleChangeRequest(
            _("The category tree changed since the request was made: %(why)s Propose it again.")
            % {"why": " ".join(exc.messages)}
        ) from exc
    planned = {item.tag_id: item.changes.get("code") for item in items}
    now = {row["tag"].pk: row["new_code"] for row in result.rows}
    if planned != now:
        raise services.StaleChangeRequest(
            _("The tags of the category changed since the request was made. Propose it again.")
        )
    renamed = {}
    for row in result.rows:
        if row["old_code"] != row["new_code"]:
            renamed.setdefault(row["tag"].brand_id, {})[row["old_code"]] = row["new_code"]
    tree.carry_out(result, user=user, reason=reason)
    for brand_id, mapping in renamed.items():
        audiences.rename_tag_codes(brand_id, mapping, reason=reason)
    old_codes = {row["tag"].pk: row["old_code"] for row in result.rows}
    for item in items:
        tag = Tag.objects.get(pk=item.tag_id)
        version = tag.versions.order_by("-version").first() if tag.published_version else None
        if version is not None and version.version != item.base_version:
            item.produced_version = version
            item.save(update_fields=["produced_version"])
        services._audit(
            cr, user, AuditAction.APPLIED, tag=tag, kind=item.kind,
            version=tag.published_version, fields=["code", "category"],
            old_code=old_codes.get(tag.pk, ""),
        )  # fmt: skip
    services._audit(cr, user, AuditAction.APPLIED, restructure=payload, tags=len(items))
