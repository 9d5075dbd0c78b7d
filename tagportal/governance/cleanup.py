"""Cleanup: from report findings to deprecate, retire and merge change requests.

A steward selects findings of a cold-tag report (a tag: deprecate or retire it) or of
a merge-suggestion report (a pair: merge one into the other, the kept one chosen by
the steward) and :func:`propose_cleanup` turns them into one bulk change request per
business line, submitted for review, after :func:`preview` has shown the lineage
impact. The owners of the tags affected (the tags themselves and the tags reading
them) are notified.

A finding is refused, and nothing is created, when it is not in the report, when its
tags changed since the report (another published version, another status or, for a
pair, another definition), or when a tag is already in an open change request.

:func:`propose_cold_deprecations` is the automatic path: with
``TAGPORTAL_AUTO_DEPRECATE_COLD`` on, a tag flagged cold by two cold-tag reports of the
same scope in a row is proposed for deprecation by the cleanup service account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Tag

from . import services
from .choices import ChangeKind, ReportKind, ReportStatus
from .models import ChangeRequest, Report

log = logging.getLogger(__name__)

#: What each kind of report lets a steward do with its findings.
ACTIONS = {
    ReportKind.COLD: (ChangeKind.DEPRECATE, ChangeKind.RETIRE),
    ReportKind.MERGE: (ChangeKind.MERGE,),
}

#: The service account that proposes automatic cleanups.
SYSTEM_USERNAME = "tagportal-cleanup"


@dataclass
class Finding:
    """One selected finding: act on ``tag`` (merge it into ``target``)."""

    report: Report
    action: str
    tag: Tag
    target: Tag | None
    row: dict

    @property
    def label(self) -> str:
        if self.target is not None:
            return f"{self.tag.code} → {self.target.code}"
        return self.tag.code


def _int(text, what: str) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        raise ValidationError(_("Not a valid finding: “%(value)s”.") % {"value": what}) from None


def _changed(tag: Tag, brief: dict) -> bool:
    return tag.published_version != brief.get("version") or tag.status != brief.get("status")


def _changed_message(tag: Tag, brief: dict, report: Report) -> str:
    return _(
        "The tag “%(code)s” changed since the report of %(day)s (version %(old)s, %(old_status)s → "
        "version %(new)s, %(new_status)s). Run the report again."
    ) % {
        "code": tag.code,
        "day": report.period_end,
        "old": brief.get("version") or "—",
        "old_status": TagStatus(brief["status"]).label if brief.get("status") in TagStatus.values else "—",
        "new": tag.published_version or "—",
        "new_status": tag.get_status_display(),
    }


def parse_findings(user, report: Report, action: str, values) -> list[Finding]:
    """The findings ``values`` of ``report`` as :class:`Finding` objects, checked.

    ``values`` are tag ids (``"12"``) for a cold-tag report and ``"a:b:target"`` for a
    merge report (``target`` is ``a`` or ``b``: the tag kept)."""
    if report is None or report.status != ReportStatus.SUCCESS:
        raise ValidationError(_("Choose a finished report."))
    allowed = ACTIONS.get(report.kind)
    if not allowed:
        raise ValidationError(
            _("Findings of a %(kind)s report cannot be acted on.") % {"kind": report.get_kind_display()}
        )
    if action not in allowed:
        raise ValidationError(
            _("“%(action)s” is not a cleanup for this report; choose %(allowed)s.")
            % {"action": action, "allowed": " / ".join(str(ChangeKind(a).label) for a in allowed)}
        )
    values = [str(v) for v in values or [] if str(v).strip()]
    if not values:
        raise ValidationError(_("Select at least one finding."))
    rows = report.data.get("rows", [])
    findings: list[Finding] = []
    if report.kind == ReportKind.COLD:
        by_tag = {row["tag"]: row for row in rows}
        wanted = []
        for value in values:
            pk = _int(value, value)
            if pk not in by_tag:
                raise ValidationError(_("Tag #%(id)s is not a finding of this report.") % {"id": pk})
            wanted.append(pk)
        tags = _visible_tags(user, wanted)
        for pk in dict.fromkeys(wanted):
            tag, row = tags[pk], by_tag[pk]
            if _changed(tag, row):
                raise ValidationError(_changed_message(tag, row, report))
            findings.append(Finding(report, action, tag, None, row))
    else:
        from .reports.merge import fingerprint

        by_pair = {(row["a"]["tag"], row["b"]["tag"]): row for row in rows}
        wanted = []
        for value in values:
            parts = value.split(":")
            if len(parts) != 3:
                raise ValidationError(_("Not a valid finding: “%(value)s”.") % {"value": value})
            a, b, keep = (_int(p, value) for p in parts)
            a, b = min(a, b), max(a, b)
            if (a, b) not in by_pair:
                raise ValidationError(
                    _("Tags #%(a)s and #%(b)s are not a pair of this report.") % {"a": a, "b": b}
                )
            if keep not in (a, b):
                raise ValidationError(_("Keep one of the two tags of the pair."))
            wanted.append((a, b, keep))
        tags = _visible_tags(user, [pk for a, b, _keep in wanted for pk in (a, b)])
        used = set()
        for a, b, keep in wanted:
            row = by_pair[(a, b)]
            for pk in (a, b):
                if fingerprint(tags[pk]) != row["fingerprint"].get(str(pk), row["fingerprint"].get(pk)):
                    brief = row["a"] if row["a"]["tag"] == pk else row["b"]
                    raise ValidationError(_changed_message(tags[pk], brief, report))
            source = tags[b if keep == a else a]
            if source.pk in used:
                raise ValidationError(
                    _("The tag “%(code)s” is in two selected pairs; merge it once.") % {"code": source.code}
                )
            used.add(source.pk)
            findings.append(Finding(report, action, source, tags[keep], row))
        kept = {f.target.pk for f in findings}
        both = kept & used
        if both:
            code = tags[next(iter(both))].code
            raise ValidationError(
                _("The tag “%(code)s” would be both merged away and kept; choose one.") % {"code": code}
            )
    _check_open_requests(findings)
    return findings


def _visible_tags(user, pks) -> dict[int, Tag]:
    tags = Tag.objects.filter(pk__in=set(pks)).select_related("brand", "business_line", "owner")
    if user is not None:
        tags = tags.restrict(user, "view")
    found = {t.pk: t for t in tags}
    missing = [pk for pk in pks if pk not in found]
    if missing:
        raise ValidationError(_("Tag #%(id)s does not exist or you may not see it.") % {"id": missing[0]})
    return found


def _check_open_requests(findings: list[Finding]) -> None:
    from .choices import OPEN_STATES
    from .models import ChangeItem

    busy = (
        ChangeItem.objects.filter(tag__in=[f.tag for f in findings], change_request__state__in=OPEN_STATES)
        .values_list("tag__code", "change_request_id")
        .order_by("change_request_id")
        .first()
    )
    if busy is not None:
        raise ValidationError(
            _("The tag “%(code)s” is already in the open change request #%(n)s.")
            % {"code": busy[0], "n": busy[1]}
        )


def preview(user, findings: list[Finding]) -> list[dict]:
    """Each finding with its lineage impact (the tags reading it, transitively, the
    audiences using any of them, and the data sources it reads) and the owners who will
    be told."""
    from tagportal.lineage.services import impact, upstream

    rows = []
    for finding in findings:
        downstream = impact(finding.tag)
        rows.append(
            {
                "finding": finding,
                "tag": finding.tag,
                "action": finding.action,
                "action_label": ChangeKind(finding.action).label,
                "target": finding.target,
                "impact": {
                    "tags": downstream.tags,
                    "audiences": list(downstream.audiences().restrict(user, "view")) if user else [],
                    "sources": upstream(finding.tag).sources,
                },
                "owners": _owners(finding.tag, downstream.tags),
            }
        )
    return rows


def _owners(tag: Tag, dependents) -> list:
    owners = {t.owner_id: t.owner for t in [tag, *dependents] if t.owner_id}
    return sorted(owners.values(), key=lambda u: u.username)


def propose_cleanup(user, report: Report, findings: list[Finding], reason: str = "") -> list[ChangeRequest]:
    """One bulk change request per business line for ``findings``, submitted for review
    (tags that others read are confirmed: the preview showed them). The owners of the
    tags and of the tags reading them are notified."""
    if user is None or not user.has_perm("governance.add_changerequest"):
        raise PermissionDenied(_("You may not propose changes."))
    if not findings:
        raise ValidationError(_("Select at least one finding."))
    by_line: dict[int, list[Finding]] = {}
    for finding in findings:
        by_line.setdefault(finding.tag.business_line_id, []).append(finding)
    created = []
    with transaction.atomic():
        for line_findings in by_line.values():
            specs = [
                services.ItemSpec(kind=f.action, tag=f.tag, merge_target=f.target) for f in line_findings
            ]
            cr = services.propose(
                user,
                specs,
                title=_title(report, line_findings),
                description=_description(report, line_findings, reason),
                submit_now=True,
                confirm_dependents=True,
                is_bulk=len(specs) > 1,
            )
            created.append(cr)
            _notify_owners(user, cr, line_findings)
    return created


def _title(report: Report, findings: list[Finding]) -> str:
    action = ChangeKind(findings[0].action).label
    if len(findings) == 1:
        return _("%(action)s: %(tag)s (from the %(report)s report)") % {
            "action": action,
            "tag": findings[0].label,
            "report": report.get_kind_display(),
        }
    return _("%(action)s %(n)s tags (from the %(report)s report of %(day)s)") % {
        "action": action,
        "n": len(findings),
        "report": report.get_kind_display(),
        "day": report.period_end,
    }


def _description(report: Report, findings: list[Finding], reason: str) -> str:
    lines = [reason.strip()] if reason.strip() else []
    lines.append(
        _("Findings of the %(report)s report #%(n)s (%(start)s – %(end)s):")
        % {
            "report": report.get_kind_display(),
            "n": report.pk,
            "start": report.period_start,
            "end": report.period_end,
        }
    )
    for finding in findings:
        lines.append(f"- {finding.label}: {'; '.join(_finding_evidence(finding))}")
    return "\n".join(lines)


def _finding_evidence(finding: Finding) -> list[str]:
    if finding.report.kind == ReportKind.COLD:
        from .reports.cold import reasons_text

        return reasons_text(finding.row) or [_("score %(score)s") % {"score": finding.row.get("score")}]
    texts = []
    for evidence in finding.row.get("evidence", []):
        if evidence.get("kind") == "definition":
            texts.append(_("same definition"))
        elif evidence.get("kind") == "name":
            texts.append(_("similar names (%(score)s)") % {"score": evidence.get("score")})
        elif evidence.get("kind") == "overlap":
            texts.append(
                _("members overlap (Jaccard %(j)s%%)")
                % {"j": round(100 * float(evidence.get("jaccard", 0)), 1)}
            )
    return texts


def _notify_owners(user, cr: ChangeRequest, findings: list[Finding]) -> None:
    from tagportal.lineage.services import tag_dependents

    for finding in findings:
        owners = [o for o in _owners(finding.tag, tag_dependents(finding.tag)) if o.pk != user.pk]
        if not owners:
            continue
        services.notify(
            owners,
            _("Cleanup proposed: %(tag)s") % {"tag": finding.label},
            _(
                "%(user)s proposes to %(action)s the tag “%(code)s” (%(name)s), which you own or which a tag "
                "you own reads, in change request #%(n)s: %(why)s."
            )
            % {
                "user": user,
                "action": ChangeKind(finding.action).label.lower(),
                "code": finding.tag.code,
                "name": finding.tag.name,
                "n": cr.pk,
                "why": "; ".join(_finding_evidence(finding)),
            },
            cr,
        )


# ---------------------------------------------------------------------------
# Automatic deprecation of tags cold twice in a row


def system_user():
    """The service account that proposes automatic cleanups (created on first use)."""
    User = get_user_model()
    user, created = User.objects.get_or_create(
        username=SYSTEM_USERNAME, defaults={"display_name": "自动清理 Cleanup", "is_active": True}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
        perms = Permission.objects.filter(
            Q(content_type__app_label="core", codename="unrestricted")
            | Q(content_type__app_label="catalog", codename__in=["view_tag", "change_tag"])
            | Q(
                content_type__app_label="governance",
                codename__in=["add_changerequest", "change_changerequest"],
            )
        )
        user.user_permissions.set(perms)
        user = User.objects.get(pk=user.pk)  # a fresh permission cache
    return user


def previous_report(report: Report) -> Report | None:
    """The cold-tag report of the same scope just before ``report``."""
    return (
        Report.objects.filter(
            kind=report.kind,
            status=ReportStatus.SUCCESS,
            business_line=report.business_line,
            brand=report.brand,
            region=report.region,
            period_end__lt=report.period_end,
            params=report.params,
        )
        .order_by("-period_end", "-pk")
        .first()
    )


def cold_twice(report: Report) -> list[int]:
    """Tags cold in ``report`` and in the report before it (unchanged since)."""
    before = previous_report(report)
    if before is None:
        return []
    earlier = {row["tag"]: row for row in before.data.get("rows", []) if row.get("cold")}
    return [
        row["tag"]
        for row in report.data.get("rows", [])
        if row.get("cold")
        and row["tag"] in earlier
        and row.get("status") == TagStatus.PUBLISHED
        and earlier[row["tag"]].get("version") == row.get("version")
    ]


def propose_cold_deprecations(report: Report) -> list[ChangeRequest]:
    """Propose deprecating the tags cold in two reports in a row, skipping tags that
    changed or are already in an open change request. Answers the requests made."""
    if report.kind != ReportKind.COLD or report.status != ReportStatus.SUCCESS:
        return []
    pks = cold_twice(report)
    if not pks:
        return []
    bot = system_user()
    findings = []
    for pk in pks:
        try:
            findings.extend(parse_findings(bot, report, ChangeKind.DEPRECATE, [pk]))
        except ValidationError as exc:  # changed or already under review: leave it
            log.info("not proposing tag %s for deprecation: %s", pk, exc.messages)
    if not findings:
        return []
    return propose_cleanup(
        bot,
        report,
        findings,
        reason=_("Flagged cold by two cold-tag reports in a row (automatic proposal)."),
    )
