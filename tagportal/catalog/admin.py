from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ERROR_FLAG, PAGE_VAR, ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from guardian.admin import GuardedModelAdmin

from tagportal.core.admin import HistoryAdmin, RestrictedAdminMixin, ScopedRelatedFieldListFilter
from tagportal.core.days import beijing_text
from tagportal.core.permissions import containers_for_add, is_unrestricted, may
from tagportal.usage import services as usage

from . import export as tag_export
from . import hooks, services
from .choices import TagStatus
from .forms import ApplyTemplateForm, TagAdminForm
from .history import compare_records, default_pair, snapshot_changes, version_records
from .models import Brand, BusinessLine, Category, NamingRule, Region, Tag, TagVersion
from .rule_checks import readable_text
from .rule_editor import editor_config
from .templates import TemplateError, available_packs, pack_label


class GrantManagementMixin:
    """Object-permission management (django-guardian) is for admins only."""

    change_form_template = "admin/catalog/guarded_change_form.html"

    def _may_manage_grants(self, request):
        return is_unrestricted(request.user) and request.user.has_perm("auth.change_group")

    def obj_perms_manage_view(self, request, object_pk):
        if not self._may_manage_grants(request):
            raise PermissionDenied
        return super().obj_perms_manage_view(request, object_pk)

    def obj_perms_manage_user_view(self, request, object_pk, user_id):
        if not self._may_manage_grants(request):
            raise PermissionDenied
        return super().obj_perms_manage_user_view(request, object_pk, user_id)

    def obj_perms_manage_group_view(self, request, object_pk, group_id):
        if not self._may_manage_grants(request):
            raise PermissionDenied
        return super().obj_perms_manage_group_view(request, object_pk, group_id)

    def render_change_form(self, request, context, *args, **kwargs):
        context["may_manage_grants"] = self._may_manage_grants(request)
        return super().render_change_form(request, context, *args, **kwargs)


@admin.register(BusinessLine)
class BusinessLineAdmin(RestrictedAdminMixin, GrantManagementMixin, HistoryAdmin, GuardedModelAdmin):
    list_display = ("code", "name", "name_en", "brand_count", "tag_count", "is_active", "last_updated")
    list_filter = ("is_active",)
    search_fields = ("code", "name", "name_en", "description")

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(_brands=Count("brands", distinct=True), _tags=Count("tags", distinct=True))
        )

    @admin.display(description=gettext_lazy("brands"), ordering="_brands")
    def brand_count(self, obj):
        return obj._brands

    @admin.display(description=gettext_lazy("tags"), ordering="_tags")
    def tag_count(self, obj):
        return obj._tags


@admin.register(Brand)
class BrandAdmin(RestrictedAdminMixin, GrantManagementMixin, HistoryAdmin, GuardedModelAdmin):
    list_display = ("code", "name", "name_en", "business_line", "tag_count", "is_active")
    list_filter = (("business_line", ScopedRelatedFieldListFilter), "is_active")
    list_select_related = ("business_line",)
    search_fields = ("code", "name", "name_en", "description")
    actions = ["apply_template_action"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_tags=Count("tags"))

    @admin.display(description=gettext_lazy("tags"), ordering="_tags")
    def tag_count(self, obj):
        return obj._tags

    @admin.action(description=gettext_lazy("Apply an industry template"), permissions=["apply_template"])
    def apply_template_action(self, request, queryset):
        form = ApplyTemplateForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            for brand in queryset:
                try:
                    result = services.apply_template(brand, form.cleaned_data["template"], user=request.user)
                except (PermissionDenied, TemplateError, ValidationError) as exc:
                    self.message_user(request, f"{brand}: {exc}", messages.ERROR)
                    continue
                self.message_user(
                    request,
                    _("%(brand)s: %(created)s tags created, %(skipped)s already there.")
                    % {"brand": brand, "created": len(result.created), "skipped": len(result.skipped)},
                    messages.SUCCESS,
                )
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Apply an industry template"),
            "brands": queryset,
            "form": form,
            "opts": self.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/catalog/brand/apply_template.html", context)

    def has_apply_template_permission(self, request):
        return request.user.has_perm("catalog.apply_template")


@admin.register(Region)
class RegionAdmin(HistoryAdmin):
    list_display = ("path_name", "code", "name_en", "level")
    list_filter = ("level",)
    list_select_related = ("parent__parent",)
    search_fields = ("code", "name", "name_en")
    autocomplete_fields = ("parent",)
    ordering = ("level", "code")


@admin.register(NamingRule)
class NamingRuleAdmin(HistoryAdmin):
    list_display = ("name", "pattern", "min_length", "max_length", "example_name")
    search_fields = ("name", "pattern", "description")


class CategoryTreeFilter(admin.SimpleListFilter):
    """A category and everything below it."""

    title = gettext_lazy("category")
    parameter_name = "category"

    def lookups(self, request, model_admin):
        categories = list(Category.objects.select_related("parent__parent__parent"))
        return sorted(((c.pk, c.path_name) for c in categories), key=lambda item: item[1])

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        try:
            root = int(self.value())
        except ValueError:
            return queryset.none()
        return queryset.filter(category__in=Category.descendant_ids(root))


@admin.register(Category)
class CategoryAdmin(HistoryAdmin):
    list_display = ("category_path", "code", "name_en", "naming_rule", "tag_count", "order")
    list_filter = ("naming_rule",)
    list_select_related = ("naming_rule",)
    search_fields = ("code", "name", "name_en", "description")
    autocomplete_fields = ("parent",)

    def get_list_display(self, request):
        column = category_path_column(request, "pk", gettext_lazy("path"), "name")
        return [column if c == "category_path" else c for c in self.list_display]

    @admin.display(description=gettext_lazy("path"), ordering="name")
    def category_path(self, obj):  # replaced per request by get_list_display
        return obj.path_name

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_tags=Count("tags"))

    @admin.display(description=gettext_lazy("tags"), ordering="_tags")
    def tag_count(self, obj):
        return obj._tags


class TagVersionInline(admin.TabularInline):
    model = TagVersion
    fields = ("version", "published_at", "published_by", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-version",)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


CATEGORY_LABEL = gettext_lazy("category")


def published_versions(tag, records) -> list[dict]:
    """The rows of a tag's published versions, newest first: the version, when (Beijing
    time), who proposed and who approved it (as governance records; the publisher when
    nothing does), its note, the labels of the fields it changed and the history record
    of its publication (to compare)."""
    versions = list(tag.versions.select_related("published_by").order_by("version"))
    people = hooks.version_people([v.pk for v in versions])
    publications = version_records(records)
    rows, before = [], None
    for version in versions:
        found = people.get(version.pk, {})
        changed = snapshot_changes(before, version.snapshot, Tag.field_label) if before is not None else []
        rows.append(
            {
                "version": version,
                "at": beijing_text(version.published_at),
                "proposed_by": found.get("proposed_by"),
                "approved_by": found.get("approved_by") or version.published_by,
                "changed": [change.label for change in changed],
                "record": publications.get(version.version),
            }
        )
        before = version.snapshot
    return rows[::-1]


def stale_ids(request) -> set[int]:
    """Tags reading a data source past its refresh SLA (as lineage judges), once per request."""
    if not hasattr(request, "_tp_stale_ids"):
        request._tp_stale_ids = hooks.stale_tag_ids()
    return request._tp_stale_ids


def computation_panel(tag, runs: int = 10) -> dict | None:
    """What the tag's page shows of its computation: the state its result carries
    (through the reverse relation), the value distribution with the values' labels and
    the latest ``runs`` runs. ``None`` when nothing computes tags."""
    if Tag.related_model(hooks.COMPUTATION) is None:
        return None
    computation = hooks.computation_of(tag)
    panel = {"computation": computation, "runs": [], "rows": [], "coverage_pct": None}
    if Tag.related_model(hooks.RUNS) is not None:
        panel["runs"] = list(getattr(tag, hooks.RUNS).order_by("-started_at", "-pk")[:runs])
    if computation is None:
        return panel
    distribution = computation.distribution or {}
    labels = {v.get("code"): v.get("label") for v in tag.values or [] if isinstance(v, dict)}
    total = sum(distribution.values())
    panel["rows"] = [
        (labels.get(str(value), value), count, count / total if total else 0)
        for value, count in distribution.items()
    ]
    if computation.coverage is not None:
        panel["coverage_pct"] = round(computation.coverage * 100, 1)
    return panel


def freshness_column(request):
    stale = stale_ids(request)

    def data_freshness(obj):
        if obj.pk in stale:
            return format_html(
                '<span class="tp-stale" title="{}">⚠ {}</span>',
                _("A data source it reads is past its refresh SLA"),
                _("stale"),
            )
        return ""

    data_freshness.short_description = gettext_lazy("data")
    return data_freshness


class TemplateListFilter(admin.AllValuesFieldListFilter):
    """The templates of the tags in view, by their display names (医美, not
    ``medical_aesthetics``); the query keeps the key."""

    def choices(self, changelist):
        keys = sorted(available_packs(), key=len, reverse=True)
        for choice in super().choices(changelist):
            display = str(choice["display"])
            for key in keys:
                if display == key or display.startswith(f"{key} ("):
                    choice["display"] = pack_label(key) + display[len(key) :]
                    break
            else:
                if display == "" or display.startswith(" ("):
                    choice["display"] = _("No template") + display
            yield choice


class FreshnessFilter(admin.SimpleListFilter):
    title = gettext_lazy("data freshness")
    parameter_name = "data"

    def lookups(self, request, model_admin):
        return [("stale", _("Stale source")), ("fresh", _("Fresh"))]

    def queryset(self, request, queryset):
        if self.value() == "stale":
            return queryset.filter(pk__in=stale_ids(request))
        if self.value() == "fresh":
            return queryset.exclude(pk__in=stale_ids(request))
        return queryset


def category_path_column(
    request, id_attr="category_id", label=CATEGORY_LABEL, order="category__name", crumbs=False
):
    """A changelist column showing a category's full path, from one query per page
    however deep the tree is; with ``crumbs``, as a breadcrumb (父类 › 子类) whose names
    never break inside."""

    if not hasattr(request, "_tp_category_paths"):
        request._tp_category_paths = Category.path_names()
    paths = request._tp_category_paths

    def category_path(obj):
        path = paths.get(getattr(obj, id_attr), "")
        if not crumbs or not path:
            return path
        *parents, leaf = path.split(" › ")
        return format_html(
            '<span class="tp-crumbs" title="{}">{}<span class="tp-crumb tp-leaf">{}</span></span>',
            path,
            format_html_join("", '<span class="tp-crumb">{}</span> › ', ((p,) for p in parents)),
            leaf,
        )

    category_path.short_description = label
    category_path.admin_order_field = order
    return category_path


class TagChangeList(ChangeList):
    """The tag list, with each tag's computation state joined in (for the coverage column)."""

    def apply_select_related(self, qs):
        return super().apply_select_related(qs).with_computation()


@admin.register(Tag)
class TagAdmin(RestrictedAdminMixin, GrantManagementMixin, HistoryAdmin, GuardedModelAdmin):
    form = TagAdminForm
    change_form_template = "admin/catalog/tag/change_form.html"
    object_history_template = "admin/catalog/tag/object_history.html"
    object_history_list_template = "admin/catalog/tag/object_history_list.html"
    # Built for reading at 1280 px: the Chinese name first (the link) with the code under
    # it, the category as a breadcrumb, the brand with its business line, then the state.
    list_display = (
        "tag_name", "category_path", "brand_and_line", "kind", "status", "version_label",
        "coverage", "data_freshness", "owner", "updated",
    )  # fmt: skip
    list_display_links = ("tag_name",)
    list_filter = (
        ("business_line", ScopedRelatedFieldListFilter),
        ("brand", ScopedRelatedFieldListFilter),
        CategoryTreeFilter,
        "kind",
        "status",
        ("regions", ScopedRelatedFieldListFilter),
        "value_type",
        "refresh_mode",
        ("owner", admin.RelatedOnlyFieldListFilter),
        ("template", TemplateListFilter),
        FreshnessFilter,
    )
    list_select_related = ("brand", "business_line", "owner")
    search_fields = ("code", "name", "name_en", "description")
    search_help_text = gettext_lazy("Search Chinese and English names, codes and descriptions.")
    list_per_page = 50
    empty_value_display = "—"
    show_full_result_count = False
    autocomplete_fields = ("regions", "owner")
    readonly_fields = (
        "business_line", "status", "published_version", "template_name", "created", "last_updated",
        "values_table", "definition_text",
    )  # fmt: skip
    inlines = [TagVersionInline]
    history_list_display = ["history_at"]
    actions = ["export_selected"]

    class Media:
        js = ("catalog/tag_form.js", "catalog/rule_editor.js")
        css = {"all": ("catalog/rule_editor.css",)}

    fieldsets = (
        (None, {"fields": ("name", "name_en", "code", "description")}),
        (
            gettext_lazy("Classification"),
            {"fields": ("brand", "business_line", "category", "regions", "owner")},
        ),
        (gettext_lazy("Values"), {"fields": ("kind", "value_type", "values", "unit")}),
        (gettext_lazy("Computation"), {"fields": ("refresh_mode", "schedule", "definition")}),
        (
            gettext_lazy("Lifecycle"),
            {"fields": ("status", "published_version", "template_name", "created", "last_updated")},
        ),
    )

    def get_changelist(self, request, **kwargs):
        return TagChangeList

    def get_fieldsets(self, request, obj=None):
        """A tag shown read-only gives its values as a table and its rule as text."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        readable = {"values": "values_table", "definition": "definition_text"}
        return [
            (name, {**options, "fields": [readable.get(f, f) for f in options["fields"]]})
            for name, options in fieldsets
        ]

    @admin.display(description=gettext_lazy("values"))
    def values_table(self, obj):
        values = [v for v in obj.values or [] if isinstance(v, dict)]
        if not values:
            return "—"
        bounded = any("min" in v or "max" in v for v in values)
        head = [_("Code"), _("Chinese label"), _("English label")]
        if bounded:
            head += [_("from (included)"), _("below (excluded)")]

        def cells(v):
            row = [v.get("label", ""), v.get("label_en", "")]
            if bounded:
                row += ["" if v.get("min") is None else v["min"], "" if v.get("max") is None else v["max"]]
            # the code is data (an identifier), not a word to translate
            code = format_html("<td><code>{}</code></td>", v.get("code", ""))
            return code + format_html_join("", "<td>{}</td>", ((c,) for c in row))

        return format_html(
            '<table class="tp-values-view" id="tp-values-view"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
            format_html_join("", "<th>{}</th>", ((h,) for h in head)),
            format_html_join("", "<tr>{}</tr>", ((cells(v),) for v in values)),
        )

    @admin.display(description=gettext_lazy("definition"))
    def definition_text(self, obj):
        """The rule in the text syntax (readable without knowing JSON)."""
        text = readable_text(obj.definition)
        if not text:
            return "—"
        return format_html('<pre class="tp-rule-text" id="tp-rule-text">{}</pre>', text)

    @admin.display(description=gettext_lazy("template"))
    def template_name(self, obj):
        return pack_label(obj.template)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "category":
            kwargs["queryset"] = Category.objects.select_related("parent__parent__parent")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change, **kwargs)
        user = request.user

        class FormWithUser(form_class):
            def __init__(self, *args, **inner):
                inner.setdefault("user", user)
                super().__init__(*args, **inner)

        return FormWithUser

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["tag_locked"] = obj.status != TagStatus.DRAFT
            context["tag_computation"] = computation_panel(obj)
            if obj.brand_id and self.has_change_permission(request, obj):
                context["rule_editor"] = editor_config(
                    obj, target="id_definition", values_target="id_values", inputs=True
                )
            if request.user.has_perm("governance.add_changerequest") and may(request.user, obj, "change"):
                try:
                    context["propose_url"] = reverse("governance:propose", args=[obj.pk])
                except NoReverseMatch:  # the review pages are not installed
                    pass
        return super().render_change_form(request, context, add, change, form_url, obj)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        # A tag's page shown to someone who may view it is a use of the tag.
        if request.method == "GET" and response.status_code == 200:
            obj = (getattr(response, "context_data", None) or {}).get("original")
            if obj is not None:
                usage.record_safely([obj.pk], request.user.pk, usage.UsageKind.PAGE_VIEW)
        return response

    def changelist_view(self, request, extra_context=None):
        params = request.GET.copy()
        for ignored in (PAGE_VAR, ERROR_FLAG):
            params.pop(ignored, None)
        url = reverse("admin:catalog_tag_export")
        extra_context = {
            **(extra_context or {}),
            "tag_export_urls": {
                fmt: f"{url}?{urlencode([*params.lists(), ('format', [fmt])], doseq=True)}"
                for fmt in tag_export.FORMATS
            },
            # The dictionary is read at its full width: the header links lead elsewhere.
            "is_nav_sidebar_enabled": False,
        }
        if not self.has_change_permission(request) and "title" not in extra_context:
            # Django's "Select tag to change" reads wrong to someone who may only read.
            extra_context["title"] = _("Tag dictionary")
        return super().changelist_view(request, extra_context)

    @admin.action(description=gettext_lazy("Export selected tags"), permissions=["view"])
    def export_selected(self, request, queryset):
        return tag_export.export_response(request.user, queryset, "xlsx", request.POST.get("lang"))

    def export_view(self, request):
        """The dictionary as Excel (``?format=xlsx``) or CSV (``?format=csv``): the tags the
        changelist shows with the same filters, search and order, or narrowed by the
        export's own filters (``business_line``, ``brand``, ``region``, ``status``,
        ``category``, by id or code). Headers in Chinese unless ``?lang=en``."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        changelist_url = reverse("admin:catalog_tag_changelist")
        params = request.GET.copy()
        fmt = params.pop("format", [""])[-1] or "xlsx"
        language = params.pop("lang", [None])[-1]
        own = {name: params.pop(name) for name in tag_export.FILTERS if name in params}
        request.GET = params  # what is left is the changelist's
        try:
            queryset = self.get_changelist_instance(request).get_queryset(request)
        except IncorrectLookupParameters:
            return redirect(f"{changelist_url}?{ERROR_FLAG}=1")
        try:
            return tag_export.export_response(
                request.user, tag_export.filter_tags(queryset, own), fmt, language
            )
        except tag_export.ExportError as exc:
            messages.error(request, str(exc))
            return redirect(changelist_url)

    def has_change_permission(self, request, obj=None):
        # Past draft, a tag changes only through an approved change request.
        if obj is not None and obj.status != TagStatus.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status != TagStatus.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def has_add_permission(self, request):
        if not super().has_add_permission(request):
            return False
        if not hasattr(request, "_tp_may_add_tag"):  # asked several times per page
            request._tp_may_add_tag = containers_for_add(request.user, Tag, Brand).exists()
        return request._tp_may_add_tag

    def save_model(self, request, obj, form, change):
        obj._change_reason = _("Edited in the portal") if change else _("Created in the portal")
        if not change and obj.owner_id is None:
            obj.owner = request.user
        obj.save()

    def get_list_display(self, request):
        columns = {
            "category_path": category_path_column(request, crumbs=True),
            "data_freshness": freshness_column(request),
        }
        return [columns.get(c, c) if isinstance(c, str) else c for c in self.list_display]

    @admin.display(description=gettext_lazy("data"))
    def data_freshness(self, obj):  # replaced per request by get_list_display
        return ""

    @admin.display(description=gettext_lazy("coverage"))
    def coverage(self, obj):
        """The coverage of the tag's current result, flagged when its distribution drifted."""
        computation = hooks.computation_of(obj)
        if computation is None or computation.coverage is None:
            return "—"
        text = f"{computation.coverage:.1%}"
        if computation.drift_flag:
            return format_html(
                '{} <span class="tp-drift" title="{}">⚠ {}</span>',
                text,
                _("The value distribution moved (PSI) since the previous run"),
                _("drift"),
            )
        return text

    @admin.display(description=CATEGORY_LABEL, ordering="category__name")
    def category_path(self, obj):  # replaced per request by get_list_display
        return obj.category.path_name

    @admin.display(description=gettext_lazy("tag"), ordering="name")
    def tag_name(self, obj):
        """The Chinese name (the link), the code under it in small type."""
        return format_html(
            '<span class="tp-name">{}</span><small class="tp-code">{}</small>', obj.name, obj.code
        )

    @admin.display(description=gettext_lazy("brand · business line"), ordering="brand__code")
    def brand_and_line(self, obj):
        return format_html('{}<small class="tp-line">{}</small>', obj.brand.name, obj.business_line.name)

    @admin.display(description=gettext_lazy("version"), ordering="published_version")
    def version_label(self, obj):
        return f"v{obj.published_version}" if obj.published_version else "—"

    @admin.display(description=gettext_lazy("updated"), ordering="last_updated")
    def updated(self, obj):
        """The day of the last change (Beijing time), the minute in the tooltip."""
        return format_html(
            '<span title="{}">{}</span>',
            beijing_text(obj.last_updated),
            beijing_text(obj.last_updated, "%Y-%m-%d"),
        )

    def get_urls(self):
        urls = super().get_urls()
        info = self.model._meta.app_label, self.model._meta.model_name
        extra = [
            path(
                "export/",
                self.admin_site.admin_view(self.export_view),
                name="{}_{}_export".format(*info),
            ),
            path(
                "<path:object_id>/history/compare/",
                self.admin_site.admin_view(self.history_compare_view),
                name="{}_{}_history_compare".format(*info),
            ),
        ]
        return extra + urls

    def history_view(self, request, object_id, extra_context=None):
        """One row per published version (who proposed it, who approved it, when, what it
        changed), then every edit; the comparison opens on the last two versions that
        differ in what the tag says."""
        obj = self.get_queryset(request).filter(pk=object_id).first() if str(object_id).isdigit() else None
        if obj is not None and self.has_view_or_change_permission(request, obj):
            records = list(obj.history.order_by("history_date", "history_id"))
            pair = default_pair(records)
            extra_context = {
                **(extra_context or {}),
                "tag_versions": published_versions(obj, records),
                "compare_from": pair[0].history_id if pair else None,
                "compare_to": pair[1].history_id if pair else None,
                "is_nav_sidebar_enabled": False,
            }
        return super().history_view(request, object_id, extra_context)

    def history_at(self, record):
        """When an edit was made, in Beijing time (set on each record shown)."""
        return beijing_text(record.history_date)

    def set_history_delta_changes(self, request, historical_records, foreign_keys_are_objs=True):
        """What each edit changed, in words: labels, related objects by name, choices by
        label, times in Beijing time, "—" for nothing (never "Deleted user (pk=None)")."""
        previous = None
        for current in historical_records:  # newest first
            if previous is not None:
                previous.history_delta_changes = [
                    change.as_dict() for change in compare_records(current, previous) if change.changed
                ]
            previous = current

    def history_compare_view(self, request, object_id):
        obj = self.get_queryset(request).filter(pk=object_id).first()
        if obj is None:
            raise Http404
        if not self.has_view_or_change_permission(request, obj):
            raise PermissionDenied
        records = obj.history.all()
        first, second = request.GET.get("from"), request.GET.get("to")
        ordered = list(records.order_by("history_date", "history_id").values_list("history_id", flat=True))
        if not ordered:
            raise Http404
        if not first and not second:
            pair = default_pair(records.order_by("history_date", "history_id"))
            first, second = (pair[0].history_id, pair[1].history_id) if pair else (ordered[-1], ordered[-1])
        elif not first or not second:
            second = second or ordered[-1]
            first = first or (ordered[-2] if len(ordered) > 1 else ordered[-1])
        try:
            old = records.get(history_id=int(first))
            new = records.get(history_id=int(second))
        except (ValueError, obj.history.model.DoesNotExist):
            messages.error(request, _("Pick two versions of this tag to compare."))
            return redirect(reverse("admin:catalog_tag_history", args=[obj.pk]))
        if (old.history_date, old.history_id) > (new.history_date, new.history_id):
            old, new = new, old
        changes = compare_records(old, new)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Compare versions: %(tag)s") % {"tag": obj},
            "object": obj,
            "opts": self.model._meta,
            "old": old,
            "new": new,
            "old_at": beijing_text(old.history_date),
            "new_at": beijing_text(new.history_date),
            "changes": [change.as_dict() for change in changes],
            "changed_count": sum(1 for c in changes if c.changed),
            "show_all": request.GET.get("all") == "1",
            "is_nav_sidebar_enabled": False,
        }
        return TemplateResponse(request, "admin/catalog/tag/history_compare.html", context)


@admin.register(TagVersion)
class TagVersionAdmin(RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("tag", "version", "published_at", "published_by", "note")
    list_select_related = ("tag", "published_by")
    search_fields = ("tag__code", "tag__name", "tag__name_en", "note")
    readonly_fields = ("tag", "version", "published_at", "published_by", "note", "snapshot_pretty")
    fields = readonly_fields

    @admin.display(description=gettext_lazy("snapshot"))
    def snapshot_pretty(self, obj):
        import json

        return format_html("<pre>{}</pre>", json.dumps(obj.snapshot, ensure_ascii=False, indent=2))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
