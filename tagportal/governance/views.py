"""The review pages: the steward's queue, a change request with its side-by-side diff
and decisions, proposing a change to a tag, bulk upload, the inbox, re-certification
and the audit trail.

Every page needs a login; lists come from ``restrict`` and the governance services, so
another business line's request answers 404. Every action calls a service function and
answers with a message and a redirect (post/redirect/get); a refused action is a
message, never a server error.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import F
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.models import Brand, BusinessLine, Tag
from tagportal.catalog.rule_editor import editor_config
from tagportal.catalog.services import recertification_due
from tagportal.core import spreadsheets
from tagportal.core.exceptions import Conflict, conflict_text, error_text
from tagportal.core.permissions import may
from tagportal.notifications import services as notifications

from . import audit, bulk, impact, model_runs, restructure, services
from .choices import REQUEST_TRANSITIONS, ChangeKind, RequestState
from .forms import (
    ROLLBACK,
    UPDATE_FIELDS,
    AuditForm,
    BulkUploadForm,
    ProposeForm,
    RequestFilterForm,
    RestructureForm,
    TagSearchForm,
    kind_label,
)
from .models import ChangeRequest

PAGE_SIZE = 50
#: How many tags of a request its row in a list names.
QUEUE_TAGS_SHOWN = 3
#: Column titles of the audit table on the page (the CSV keeps its Chinese headers).
AUDIT_LABELS = {
    "time": gettext_lazy("Time (Beijing)"),
    "business_line": gettext_lazy("Business line"),
    "brand": gettext_lazy("Brand"),
    "tag_code": gettext_lazy("Tag code"),
    "tag_name": gettext_lazy("Tag name"),
    "event": gettext_lazy("Event"),
    "actor": gettext_lazy("By"),
    "change_request": gettext_lazy("Change request"),
    "proposer": gettext_lazy("Proposer"),
    "approver": gettext_lazy("Approver"),
    "fields": gettext_lazy("Fields changed"),
    "version": gettext_lazy("Version"),
    "reason": gettext_lazy("Reason"),
}


# ---------------------------------------------------------------------------
# Helpers


def _render(request, template: str, context: dict, nav: str = "", status: int = 200) -> TemplateResponse:
    context = {
        **admin.site.each_context(request),
        "nav": nav,
        "unread_count": notifications.unread_count(request.user),
        **context,
    }
    return TemplateResponse(request, template, context, status=status)


def _require(user, permission: str) -> None:
    if not user.has_perm(permission):
        raise PermissionDenied(_("You may not open this page."))


def _paginate(request, items):
    return Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))


def _query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def stale_flags(tag_ids) -> dict[int, list[str]]:
    """For the stale ones among ``tag_ids``: why (the stale sources they read)."""
    tag_ids = {pk for pk in tag_ids if pk}
    if not tag_ids:
        return {}
    from tagportal.lineage.services import stale_reasons, stale_tag_ids

    stale = stale_tag_ids(Tag.objects.filter(pk__in=tag_ids))
    if not stale:
        return {}
    reasons = stale_reasons(stale)
    return {pk: reasons.get(pk) or [_("reads a stale data source")] for pk in stale}


def _status_label(status) -> str:
    return str(TagStatus(status).label) if status in TagStatus.values else str(status or "")


def _age_days(cr: ChangeRequest) -> int:
    start = cr.submitted_at or cr.created
    return max((timezone.now() - start).days, 0) if start else 0


def _kind_of(cr: ChangeRequest, items: list) -> str:
    kinds = {item.kind for item in items}
    if cr.is_bulk or len(kinds) != 1:
        return kind_label("bulk")
    item = items[0]
    return kind_label(ROLLBACK) if item.rollback_to else str(ChangeKind(item.kind).label)


# ---------------------------------------------------------------------------
# Lists of requests


LISTS = {
    "queue": gettext_lazy("Review queue"),
    "mine": gettext_lazy("My requests"),
    "all": gettext_lazy("All requests I can see"),
}


def _request_list(request, which: str):
    user = request.user
    _require(user, "governance.view_changerequest")
    if which == "queue":
        queryset = services.review_queue(user).order_by("submitted_at", "pk")
        business_lines = services.reviewable_business_lines(user)
    else:
        queryset = services.requests_for(user).prefetch_related("items__tag").order_by("-created", "-pk")
        if which == "mine":
            queryset = queryset.filter(proposer=user)
        business_lines = BusinessLine.objects.restrict(user, "view")
    brands = Brand.objects.restrict(user, "view").filter(business_line__in=business_lines)
    form = RequestFilterForm(
        request.GET or None, business_lines=business_lines, brands=brands, with_state=which != "queue"
    )
    page = _paginate(request, form.filter(queryset))
    requests = list(page.object_list)
    stale = stale_flags({item.tag_id for cr in requests for item in cr.items.all()})
    rows = []
    for cr in requests:
        items = list(cr.items.all())
        stale_items = [item.tag for item in items if item.tag_id in stale]
        out_of_date = services.stale_changes(cr, items)
        rows.append(
            {
                "cr": cr,
                "kind": _kind_of(cr, items),
                "count": len(items),
                # Requests often share a title ("修改说明"): the tags tell them apart.
                "tags": [item.tag for item in items if item.tag_id][:QUEUE_TAGS_SHOWN],
                "more_tags": max(len([item for item in items if item.tag_id]) - QUEUE_TAGS_SHOWN, 0),
                "age": _age_days(cr),
                "stale_tags": stale_items,
                "stale_reasons": sorted({r for item in stale_items for r in stale[item.pk]}),
                "out_of_date": out_of_date,
                "impact": impact.summary(items),
            }
        )
    context = {
        "title": LISTS[which],
        "which": which,
        "lists": [(key, label, reverse(f"governance:{key}")) for key, label in LISTS.items()],
        "form": form,
        "rows": rows,
        "page": page,
        "query": _query_without_page(request),
        "may_review": services.reviewable_business_lines(user).exists(),
    }
    return _render(request, "governance/queue.html", context, nav="queue" if which == "queue" else "mine")


@login_required
@require_GET
def queue(request):
    return _request_list(request, "queue")


@login_required
@require_GET
def mine(request):
    return _request_list(request, "mine")


@login_required
@require_GET
def all_requests(request):
    return _request_list(request, "all")


# ---------------------------------------------------------------------------
# One request


def _visible_request(user, pk) -> ChangeRequest:
    return get_object_or_404(services.requests_for(user), pk=pk)


def _act(request, cr: ChangeRequest):
    """Carry out one posted action through its service; a message either way."""
    user, post = request.user, request.POST
    action = post.get("action", "")
    reason = post.get("reason", "").strip()
    try:
        if action == "submit":
            confirm = ("confirm_dependents" in post) if "confirm_shown" in post else None
            services.submit(user, cr, confirm_dependents=confirm)
            messages.success(request, _("Submitted for review."))
        elif action == "withdraw":
            services.withdraw(user, cr)
            messages.success(request, _("The request is withdrawn."))
        elif action == "approve":
            apply_now = "apply_now" in post
            try:
                cr = services.approve(user, cr, reason, apply_now=apply_now)
            except services.StaleChangeRequest as exc:
                if not apply_now or isinstance(exc, services.OutOfDateChangeRequest):
                    raise  # its message says nothing was recorded
                messages.error(
                    request,
                    _("%(error)s The approval was not recorded either: the request is still in review.")
                    % {"error": conflict_text(exc)},
                )
                return
            if cr.state == RequestState.APPLIED:
                messages.success(request, _("Approved and applied: the change is published."))
            else:
                messages.success(request, _("Approved. It goes live when it is applied."))
        elif action == "reject":
            services.reject(user, cr, reason)
            messages.success(request, _("Rejected."))
        elif action == "request_changes":
            services.request_changes(user, cr, reason)
            messages.success(request, _("Sent back to the proposer for changes."))
        elif action == "apply":
            services.apply(user, cr)
            messages.success(request, _("Applied: the change is published."))
        elif action == "comment":
            services.comment(user, cr, post.get("text", ""))
            messages.success(request, _("Comment added."))
        else:
            messages.error(request, _("Unknown action."))
    except (ValidationError, PermissionDenied, Conflict) as exc:
        messages.error(request, error_text(exc))


@login_required
@require_http_methods(["GET", "POST"])
def change_request(request, pk: int):
    user = request.user
    cr = _visible_request(user, pk)
    if request.method == "POST":
        _act(request, cr)
        return redirect("governance:request", cr.pk)
    items = list(
        cr.items.select_related("tag", "merge_target", "produced_version").order_by("position", "pk")
    )
    stale = stale_flags({item.tag_id for item in items} | {item.merge_target_id for item in items})
    out_of_date = services.stale_changes(cr, items)
    is_proposer = cr.proposer_id == user.pk
    is_reviewer = not is_proposer and services.may_review(user, cr)
    state = RequestState(cr.state)
    editable = state in (RequestState.DRAFT, RequestState.CHANGES_REQUESTED)
    closable_when_stale = bool(out_of_date) and state == RequestState.APPROVED
    run_items = [item for item in items if item.kind == ChangeKind.MODEL_RUN]
    context = {
        "title": cr.title,
        "cr": cr,
        "kind": _kind_of(cr, items) if items else "—",
        "age": _age_days(cr),
        "items": [
            {
                "item": item,
                "kind": kind_label(ROLLBACK) if item.rollback_to else str(ChangeKind(item.kind).label),
                "stale": stale.get(item.tag_id, []),
                "target_stale": stale.get(item.merge_target_id, []) if item.merge_target_id else [],
                "out_of_date": item in out_of_date,
                "dependents": [
                    {**dep, "status_label": _status_label(dep.get("status"))} for dep in item.dependents
                ],
            }
            for item in items
        ],
        "any_stale": bool(stale),
        "out_of_date": out_of_date,
        "any_dependents": any(item.dependents for item in items),
        "comments": cr.comments.select_related("author"),
        "events": cr.audit_events.select_related("actor", "tag").order_by("at", "pk"),
        "is_proposer": is_proposer,
        "is_reviewer": is_reviewer,
        "can_submit": is_proposer and editable,
        "can_edit": is_proposer and editable and len(items) == 1 and not cr.is_bulk,
        "can_withdraw": is_proposer
        and (RequestState.WITHDRAWN in REQUEST_TRANSITIONS[state] or closable_when_stale),
        # an out-of-date request can only be rejected or withdrawn (see services.stale_changes)
        "can_review": is_reviewer and (state == RequestState.SUBMITTED or closable_when_stale),
        "can_approve": is_reviewer and state == RequestState.SUBMITTED and not out_of_date,
        # nobody edits a request to publish a model run: it is approved or rejected
        "can_request_changes": not run_items,
        "model_run": model_runs.run_link(run_items[0]) if run_items else None,
        "out_of_date_reason": model_runs.refusal(run_items[0]) if run_items and out_of_date else "",
        "can_apply": state == RequestState.APPROVED
        and not out_of_date
        and (user.pk in (cr.proposer_id, cr.reviewer_id) or is_reviewer),
        "needs_confirm": any(item.dependents or item.kind in services.REMOVING_KINDS for item in items),
        "own_request_in_review": is_proposer and state == RequestState.SUBMITTED,
    }
    context["any_impact"] = impact.attach(user, cr, context["items"])
    return _render(request, "governance/request.html", context, nav="mine" if is_proposer else "queue")


# ---------------------------------------------------------------------------
# Proposing


def kinds_for(tag: Tag) -> list[str]:
    """The kinds of change a tag in its current status can take, the usual one first."""
    kinds = []
    for kind in (
        ChangeKind.CREATE,
        ChangeKind.UPDATE,
        ROLLBACK,
        ChangeKind.DEPRECATE,
        ChangeKind.RESTORE,
        ChangeKind.MERGE,
        ChangeKind.RETIRE,
    ):
        base = ChangeKind.UPDATE if kind == ROLLBACK else ChangeKind(kind)
        if tag.status not in services.KIND_FROM[base]:
            continue
        if kind == ROLLBACK and not tag.versions.exclude(version=tag.published_version).exists():
            continue
        kinds.append(str(kind))
    return kinds


def _tag_dependents(tag: Tag) -> list[Tag]:
    from tagportal.lineage.services import tag_dependents

    return [t for t in tag_dependents(tag) if t.status != TagStatus.RETIRED]


def _propose_page(request, tag: Tag, cr: ChangeRequest | None = None, item=None):
    user = request.user
    kinds = kinds_for(tag)
    form = ProposeForm(
        request.POST if request.method == "POST" else None,
        tag=tag,
        user=user,
        kinds=kinds,
        item=item,
        change_request=cr,
    )
    if request.method == "POST" and kinds and form.is_valid():
        data = form.cleaned_data
        spec = form.spec()
        try:
            if cr is None:
                cr = services.propose(
                    user,
                    [spec],
                    title=data["title"],
                    description=data["request_description"],
                    submit_now=data["submit_now"],
                    confirm_dependents=data["confirm_dependents"],
                )
            else:
                with transaction.atomic():
                    cr = services.replace_items(user, cr, [spec], title=data["title"] or None)
                    if data["submit_now"]:
                        services.submit(user, cr, confirm_dependents=data["confirm_dependents"])
        except ValidationError as exc:
            form.add_service_errors(exc)
        except services.DependentsNeedConfirmation as exc:
            form.add_error("confirm_dependents", conflict_text(exc))
        except (Conflict, PermissionDenied) as exc:
            form.add_error(None, error_text(exc))
        else:
            cr.refresh_from_db()
            if cr.state == RequestState.SUBMITTED:
                messages.success(request, _("Change request #%(n)s is submitted for review.") % {"n": cr.pk})
            else:
                messages.success(
                    request,
                    _("Change request #%(n)s is saved as a draft; submit it when ready.") % {"n": cr.pk},
                )
            return redirect("governance:request", cr.pk)
    open_requests = services.requests_for(user).filter(
        pk__in=services.open_requests_for_tag(tag).values("pk")
    )
    if cr is not None:
        open_requests = open_requests.exclude(pk=cr.pk)
    context = {
        "title": _("Edit change request #%(n)s") % {"n": cr.pk}
        if cr is not None
        else _("Propose a change to %(tag)s") % {"tag": tag},
        "tag": tag,
        "cr": cr,
        "form": form,
        "kinds": kinds,
        "update_fields": [form[name] for name in UPDATE_FIELDS],
        "dependents": _tag_dependents(tag) if tag.status != TagStatus.DRAFT else [],
        "stale": stale_flags({tag.pk}).get(tag.pk, []),
        "open_requests": open_requests,
        "rule_editor": editor_config(tag, target="id_definition", values_target="id_values"),
    }
    status = 400 if request.method == "POST" else 200
    return _render(request, "governance/propose.html", context, nav="propose", status=status)


@login_required
@require_http_methods(["GET", "POST"])
def propose(request, tag_id: int):
    user = request.user
    _require(user, "governance.add_changerequest")
    tag = get_object_or_404(
        Tag.objects.restrict(user, "view").select_related("brand", "business_line", "category", "owner"),
        pk=tag_id,
    )
    if not may(user, tag, "change"):
        raise PermissionDenied(_("You may not propose changes to this tag."))
    return _propose_page(request, tag)


@login_required
@require_http_methods(["GET", "POST"])
def edit(request, pk: int):
    """The proposer rewrites a draft or a request sent back for changes (one tag)."""
    user = request.user
    cr = _visible_request(user, pk)
    items = list(cr.items.select_related("tag", "merge_target"))
    if cr.proposer_id != user.pk or cr.state not in (RequestState.DRAFT, RequestState.CHANGES_REQUESTED):
        messages.error(request, _("Only the proposer edits a draft or a request sent back for changes."))
        return redirect("governance:request", cr.pk)
    if len(items) != 1 or cr.is_bulk:
        messages.error(request, _("A bulk request is changed by uploading a new file."))
        return redirect("governance:request", cr.pk)
    return _propose_page(request, items[0].tag, cr=cr, item=items[0])


@login_required
@require_GET
def propose_pick(request):
    """Find the tag to propose a change to."""
    user = request.user
    _require(user, "governance.add_changerequest")
    form = TagSearchForm(request.GET or None)
    tags = (
        form.filter(Tag.objects.restrict(user, "change"))
        .exclude(status__in=[TagStatus.IN_REVIEW])
        .select_related("brand", "category")
        .order_by("brand__code", "code")
    )
    page = _paginate(request, tags)
    context = {
        "title": _("Propose a change"),
        "form": form,
        "page": page,
        "query": _query_without_page(request),
    }
    return _render(request, "governance/propose_pick.html", context, nav="propose")


# ---------------------------------------------------------------------------
# Bulk upload


@login_required
@require_http_methods(["GET", "POST"])
def bulk_upload(request):
    user = request.user
    _require(user, "governance.add_changerequest")
    form = BulkUploadForm(
        request.POST if request.method == "POST" else None,
        request.FILES if request.method == "POST" else None,
    )
    report = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            cr = bulk.propose_from_file(
                user,
                data["file"],
                title=data["title"],
                submit_now=data["submit_now"],
                confirm_dependents=data["confirm_dependents"],
            )
        except bulk.BulkFileError as exc:
            # the default detail already says that nothing was saved
            report = {**exc.as_dict(), "say_nothing_saved": bool(exc.message)}
        except (ValidationError, PermissionDenied, Conflict) as exc:
            report = {"detail": error_text(exc), "errors": [], "say_nothing_saved": True}
        else:
            messages.success(
                request,
                _("Change request #%(n)s created with %(count)s change(s).")
                % {"n": cr.pk, "count": cr.items.count()},
            )
            return redirect("governance:request", cr.pk)
    status = 400 if request.method == "POST" else 200
    context = {"title": _("Bulk upload"), "form": form, "report": report}
    return _render(request, "governance/bulk.html", context, nav="bulk", status=status)


@login_required
@require_GET
def bulk_template(request):
    _require(request.user, "governance.add_changerequest")
    return spreadsheets.attachment(bulk.template_csv(), bulk.TEMPLATE_NAME)


# ---------------------------------------------------------------------------
# Inbox


@login_required
@require_http_methods(["GET", "POST"])
def inbox(request):
    user = request.user
    if request.method == "POST":
        if request.POST.get("action") == "mark_all_read":
            count = notifications.mark_read(user)
            messages.success(request, _("%(n)s message(s) marked as read.") % {"n": count})
        return redirect("governance:inbox")
    notes = notifications.inbox_of(user).order_by(F("read_at").asc(nulls_first=True), "-created", "-pk")
    context = {"title": _("Inbox"), "page": _paginate(request, notes), "query": _query_without_page(request)}
    return _render(request, "governance/inbox.html", context, nav="inbox")


@login_required
@require_GET
def inbox_open(request, pk: int):
    """Mark one message read and go where it points."""
    note = get_object_or_404(notifications.inbox_of(request.user), pk=pk)
    notifications.mark_read(request.user, [note.pk])
    if note.url and url_has_allowed_host_and_scheme(
        note.url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(note.url)
    return redirect("governance:inbox")


# ---------------------------------------------------------------------------
# Re-certification


def _certifiable(user):
    return Tag.objects.restrict(user, "view").filter(
        business_line__in=services.reviewable_business_lines(user)
    )


def _int_list(values) -> list[int]:
    return [int(v) for v in values if str(v).isdigit()]


@login_required
@require_http_methods(["GET", "POST"])
def recertify(request):
    user = request.user
    _require(user, "governance.review_changerequest")
    tags = _certifiable(user)
    if request.method == "POST":
        if request.POST.get("certify"):
            ids = _int_list([request.POST["certify"]])
        else:
            ids = _int_list(request.POST.getlist("tags"))
        note = request.POST.get("note", "").strip()
        selected = list(tags.filter(pk__in=ids).order_by("code"))
        if not selected:
            messages.warning(request, _("Select the tags to certify."))
        done, errors = [], []
        for tag in selected:
            try:
                services.certify(user, tag, note=note)
                done.append(tag.code)
            except (ValidationError, PermissionDenied, Conflict) as exc:
                errors.append(f"{tag.code}: {error_text(exc)}")
        if done:
            messages.success(
                request,
                _("Certified %(n)s tag(s): %(codes)s.") % {"n": len(done), "codes": ", ".join(done)},
            )
        for error in errors:
            messages.error(request, error)
        return redirect("governance:recertify")
    now = timezone.now()
    due = recertification_due(
        tags.select_related("brand", "business_line", "certified_by").order_by("brand__code", "code"), now=now
    )
    rows = []
    for tag in due:
        days = tag.category.effective_recertification_days()
        due_at = tag.certified_at + dt.timedelta(days=days) if tag.certified_at else None
        rows.append(
            {"tag": tag, "period": days, "due_at": due_at, "overdue": (now - due_at).days if due_at else None}
        )
    context = {"title": _("Re-certification"), "rows": rows}
    return _render(request, "governance/recertify.html", context, nav="recertify")


# ---------------------------------------------------------------------------
# Audit trail


def _audit_form(request):
    _require(request.user, "governance.view_auditevent")
    data = request.GET.copy()
    for key, value in AuditForm.defaults().items():
        if not data.get(key):
            data[key] = value
    data.pop("page", None)
    return AuditForm(data, user=request.user)


@login_required
@require_GET
def audit_page(request):
    form = _audit_form(request)
    page, total = None, 0
    columns = [(key, AUDIT_LABELS[key]) for key, _header in audit.COLUMNS]
    if form.is_valid():
        data = form.cleaned_data
        trail = audit.AuditTrail(
            request.user, data["start"], data["end"], data["business_line"], **form.filters()
        )
        page = _paginate(request, trail)
        total = page.paginator.count
    context = {
        "title": _("Audit trail"),
        "form": form,
        "columns": columns,
        "page": page,
        "labels": dict(columns),
        "rows": [{**row, "fields": audit.fields_in_words(row["fields"])} for row in page] if page else [],
        "total": total,
        "query": form.data.urlencode(),
        "csv_query": form.data.urlencode(),
    }
    return _render(
        request, "governance/audit.html", context, nav="audit", status=200 if form.is_valid() else 400
    )


@login_required
@require_GET
def audit_csv(request):
    form = _audit_form(request)
    if not form.is_valid():
        return audit_page(request)
    data = form.cleaned_data
    rows = audit.audit_rows(request.user, data["start"], data["end"], data["business_line"], **form.filters())
    return spreadsheets.attachment(audit.to_csv(rows), audit.csv_filename(data["start"], data["end"]))


# ---------------------------------------------------------------------------
# Impact preview of rule changes (see :mod:`.impact`)


@login_required
@require_http_methods(["POST"])
def impact_recompute(request, pk: int):
    """The "recompute" button of the impact preview."""
    cr = _visible_request(request.user, pk)
    state = impact.recompute(request.user, cr)
    if state == impact.COMPUTING:
        messages.info(request, _("The impact preview is being computed again; reload the page in a moment."))
    elif state == impact.READY:
        messages.success(request, _("The impact preview was computed again."))
    elif state == "closed":
        messages.error(request, _("The request is decided: its impact preview stays as it was."))
    else:
        messages.info(request, _("This request changes no rule: there is no impact to preview."))
    return redirect("governance:request", cr.pk)


# ---------------------------------------------------------------------------
# Restructuring the category tree


@login_required
@require_http_methods(["GET", "POST"])
def restructure_page(request):
    """A steward moves, merges or renames a category: preview the tags recoded, then
    propose it as a change request that another steward approves."""
    user = request.user
    _require(user, "governance.add_changerequest")
    _require(user, "governance.review_changerequest")
    form = RestructureForm(request.POST if request.method == "POST" else None)
    rows, status = None, 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            data = form.cleaned_data
            parts = {
                "operation": data["operation"],
                "source": data["source"],
                "target": data["target"],
                "new_name": data["new_name"],
                "new_code": data["new_code"],
            }
            try:
                if "propose" in request.POST:
                    cr = restructure.propose(
                        user,
                        **parts,
                        title=data["title"],
                        description=data["request_description"],
                        submit_now=True,
                    )
                    messages.success(
                        request, _("Change request #%(n)s is submitted for review.") % {"n": cr.pk}
                    )
                    return redirect("governance:request", cr.pk)
                result = restructure.build_preview(**parts)
                restructure.check(user, result)
                rows, status = restructure.preview_rows(result), 200
            except ValidationError as exc:
                form.add_service_errors(exc)
            except (Conflict, PermissionDenied) as exc:
                form.add_error(None, error_text(exc))
    context = {"title": _("Restructure categories"), "form": form, "rows": rows}
    return _render(request, "governance/restructure.html", context, nav="restructure", status=status)
