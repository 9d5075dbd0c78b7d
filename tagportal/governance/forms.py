"""Forms of the review pages: filters, proposing a change to one tag, bulk upload, audit."""

from __future__ import annotations

import datetime as dt
import json

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.catalog.choices import TagStatus
from tagportal.catalog.forms import PrettyJSONField, ValuesField
from tagportal.catalog.models import Brand, BusinessLine, Category, Region, Tag
from tagportal.core.filters import MAX_DAYS

from . import services
from .audit import kind_choices as audit_kind_choices
from .choices import ChangeKind, RequestState

#: The pseudo-kind of the propose form that rolls a tag back to one of its published versions.
ROLLBACK = "rollback"
#: The pseudo-kind of the filters that picks bulk requests.
BULK = "bulk"
#: The tag fields the propose form edits, in the order shown.
UPDATE_FIELDS = (
    "name", "name_en", "description", "category", "regions", "owner", "unit", "refresh_mode", "schedule",
    "values", "definition",
)  # fmt: skip
TEXT_FIELDS = ("name", "name_en", "description", "unit", "refresh_mode", "schedule")
MAX_UPLOAD_BYTES = 10 * 1024 * 1024


def kind_label(kind: str) -> str:
    if kind == ChangeKind.CREATE:
        return _("Submit for publication")
    if kind == ROLLBACK:
        return _("Roll back to a published version")
    if kind == BULK:
        return _("Bulk")
    return str(ChangeKind(kind).label)


# ---------------------------------------------------------------------------
# Lists of requests


class RequestFilterForm(forms.Form):
    """The GET filters above a list of change requests."""

    business_line = forms.ModelChoiceField(
        label=gettext_lazy("Business line"), queryset=BusinessLine.objects.none(), required=False
    )
    brand = forms.ModelChoiceField(label=gettext_lazy("Brand"), queryset=None, required=False)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), required=False)
    state = forms.ChoiceField(label=gettext_lazy("State"), required=False)
    min_age = forms.IntegerField(
        label=gettext_lazy("Waiting at least (days)"),
        required=False,
        min_value=0,
        max_value=MAX_DAYS,
        widget=forms.NumberInput(attrs={"style": "width: 5em"}),
    )

    def __init__(self, data=None, *, business_lines, brands, with_state: bool, **kwargs):
        super().__init__(data, **kwargs)
        self.fields["business_line"].queryset = business_lines
        self.fields["brand"].queryset = brands.select_related("business_line")
        self.fields["kind"].choices = [("", _("All"))] + [
            (value, kind_label(value)) for value in [*ChangeKind.values, BULK]
        ]
        if with_state:
            self.fields["state"].choices = [("", _("All")), *RequestState.choices]
        else:
            del self.fields["state"]

    def filter(self, queryset):
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data.get("business_line"):
            queryset = queryset.filter(business_line=data["business_line"])
        if data.get("brand"):
            queryset = queryset.filter(brand=data["brand"])
        if data.get("kind") == BULK:
            queryset = queryset.filter(is_bulk=True)
        elif data.get("kind"):
            queryset = queryset.filter(pk__in=queryset.filter(items__kind=data["kind"]).values("pk"))
        if data.get("state"):
            queryset = queryset.filter(state=data["state"])
        if data.get("min_age") is not None:
            since = timezone.now() - dt.timedelta(days=data["min_age"])
            queryset = queryset.annotate(waiting_since=Coalesce("submitted_at", "created")).filter(
                waiting_since__lte=since
            )
        return queryset


# ---------------------------------------------------------------------------
# Proposing a change to one tag


def _plain_current(tag: Tag) -> dict:
    """The tag's editable values in the plain form changes use (ids, codes, usernames)."""
    values_field = ValuesField()
    return {
        "name": (tag.name or "").strip(),
        "name_en": (tag.name_en or "").strip(),
        "description": (tag.description or "").strip(),
        "category": tag.category_id,
        "regions": sorted(tag.regions.values_list("code", flat=True)) if tag.pk else [],
        "owner": tag.owner.username if tag.owner_id else None,
        "unit": (tag.unit or "").strip(),
        "refresh_mode": tag.refresh_mode,
        "schedule": (tag.schedule or "").strip(),
        # through the editor and back, so that a value untouched in the form compares equal
        "values": values_field.to_python(values_field.prepare_value(tag.values or [])),
        "definition": tag.definition or {},
    }


class ProposeForm(forms.Form):
    """One change to one tag: an update (only the fields that differ become changes),
    a lifecycle change, a merge, a rollback, or the publication of a draft."""

    kind = forms.ChoiceField(
        label=gettext_lazy("Kind of change"), widget=forms.Select(attrs={"id": "id_kind"})
    )
    title = forms.CharField(
        label=gettext_lazy("Title"),
        max_length=200,
        required=False,
        help_text=gettext_lazy("Leave empty for a title made from the change."),
    )
    request_description = forms.CharField(
        label=gettext_lazy("Why"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text=gettext_lazy("Tell the reviewer why the change is needed."),
    )
    merge_target = forms.ModelChoiceField(
        label=gettext_lazy("Merge into"), queryset=Tag.objects.none(), required=False
    )
    rollback_to = forms.TypedChoiceField(
        label=gettext_lazy("Roll back to version"), coerce=int, required=False, empty_value=None
    )
    submit_now = forms.BooleanField(
        label=gettext_lazy("Submit for review now"),
        required=False,
        initial=True,
        help_text=gettext_lazy("Unticked, the request is saved as a draft you can submit later."),
    )
    confirm_dependents = forms.BooleanField(
        label=gettext_lazy("I have checked the tags that read this tag and confirm the change"),
        required=False,
    )

    def __init__(self, data=None, *, tag: Tag, user, kinds: list[str], item=None, change_request=None, **kw):
        super().__init__(data, **kw)
        self.tag, self.user, self.item, self.change_request = tag, user, item, change_request
        self.current = _plain_current(tag)
        self.fields["kind"].choices = [(kind, kind_label(kind)) for kind in kinds]
        editable = forms.fields_for_model(Tag, fields=UPDATE_FIELDS)
        for name in UPDATE_FIELDS:
            field = editable[name]
            field.required = False
            self.fields[name] = field
        self.fields["values"] = ValuesField(label=Tag.field_label("values"))
        self.fields["definition"] = PrettyJSONField(
            label=Tag.field_label("definition"),
            required=False,
            widget=forms.Textarea(attrs={"rows": 14, "cols": 80, "class": "vLargeTextField tp-json"}),
        )
        for name in ("description",):
            self.fields[name].widget = forms.Textarea(attrs={"rows": 3, "cols": 80})
        paths = Category.path_names()
        category = self.fields["category"]
        category.queryset = Category.objects.order_by("order", "code")
        category.label_from_instance = lambda c: paths.get(c.pk, c.name)
        self.fields["regions"] = forms.ModelMultipleChoiceField(
            label=Tag.field_label("regions"),
            queryset=Region.objects.order_by("code"),
            to_field_name="code",
            required=False,
            widget=forms.SelectMultiple(
                attrs={
                    "size": 8,
                    "data-searchable": "",
                    "data-strings": json.dumps(
                        {
                            "searchRegions": _("Search regions"),
                            "noneChosen": _("None chosen"),
                            "chosen": _("%(n)s chosen"),
                            "remove": _("Remove"),
                        },
                        ensure_ascii=False,
                    ),
                }
            ),
        )
        self.fields["owner"] = forms.ModelChoiceField(
            label=Tag.field_label("owner"),
            queryset=get_user_model().objects.filter(is_active=True).order_by("username"),
            to_field_name="username",
            required=False,
        )
        self.fields["merge_target"].queryset = (
            Tag.objects.restrict(user, "view")
            .filter(brand_id=tag.brand_id, status=TagStatus.PUBLISHED)
            .exclude(pk=tag.pk)
            .order_by("code")
        )
        self.fields["merge_target"].label_from_instance = lambda t: f"{t.name} ({t.code})"
        self.fields["rollback_to"].choices = [("", "—")] + [
            (v.version, _("Version %(n)s, published %(when)s")
             % {"n": v.version, "when": timezone.localtime(v.published_at).strftime("%Y-%m-%d %H:%M")})
            for v in tag.versions.order_by("-version")
            if v.version != tag.published_version
        ]  # fmt: skip
        self._set_initial(kinds)

    def _set_initial(self, kinds):
        initial = dict(self.current)
        initial["kind"] = kinds[0] if kinds else ""
        item, cr = self.item, self.change_request
        if item is not None:
            initial["kind"] = ROLLBACK if item.rollback_to else item.kind
            initial["rollback_to"] = item.rollback_to
            initial["merge_target"] = item.merge_target_id
            if not item.rollback_to:
                initial.update(item.changes or {})
        if cr is not None:
            initial["title"] = cr.title
            initial["confirm_dependents"] = cr.confirm_dependents
        for name, value in initial.items():
            self.initial.setdefault(name, value)

    # -- cleaning -----------------------------------------------------------

    def _plain(self, name, value):
        if name == "category":
            return value.pk if value is not None else None
        if name == "regions":
            return sorted(r.code for r in value or [])
        if name == "owner":
            return value.username if value is not None else None
        if name == "definition":
            return {} if value in (None, "") else value
        if name == "values":
            return value or []
        return (value or "").strip()

    def changes(self) -> dict:
        """The fields whose value differs from the tag's current one."""
        out = {}
        for name in UPDATE_FIELDS:
            if name not in self.cleaned_data:
                continue
            value = self._plain(name, self.cleaned_data[name])
            if value != self.current[name]:
                out[name] = value
        return out

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind != ChangeKind.UPDATE:  # the tag's fields do not matter to other kinds of change
            for name in UPDATE_FIELDS:
                self._errors.pop(name, None)
        if kind == ChangeKind.UPDATE:
            if self.cleaned_data.get("category") is None and "category" not in self.errors:
                self.add_error("category", _("A tag needs a category."))
            elif not self.errors and not self.changes():
                raise ValidationError(
                    _("Nothing differs from the current version: change at least one field."),
                    code="no_change",
                )
        elif (
            kind == ChangeKind.MERGE
            and data.get("merge_target") is None
            and "merge_target" not in self.errors
        ):
            self.add_error("merge_target", _("Say which tag to merge into."))
        elif kind == ROLLBACK and data.get("rollback_to") is None and "rollback_to" not in self.errors:
            self.add_error("rollback_to", _("Say which version to roll back to."))
        return data

    def spec(self) -> services.ItemSpec:
        kind = self.cleaned_data["kind"]
        if kind == ROLLBACK:
            return services.ItemSpec(
                kind=ChangeKind.UPDATE, tag=self.tag, rollback_to=self.cleaned_data["rollback_to"]
            )
        if kind == ChangeKind.UPDATE:
            return services.ItemSpec(kind=kind, tag=self.tag, changes=self.changes())
        if kind == ChangeKind.MERGE:
            return services.ItemSpec(kind=kind, tag=self.tag, merge_target=self.cleaned_data["merge_target"])
        return services.ItemSpec(kind=kind, tag=self.tag)

    def add_service_errors(self, exc: ValidationError) -> None:
        """Put the errors of ``services.propose`` next to the fields they are about
        (``changes.definition`` → the definition field)."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc.messages)
            return
        kind = self.cleaned_data.get("kind")
        for key, messages in exc.message_dict.items():
            name = key
            if name.startswith("items[") and "]" in name:
                name = name[name.index("]") + 1 :].lstrip(".") or "items"
            for prefix in ("changes.", "tag."):
                name = name.removeprefix(prefix)
            if name in ("__all__", "changes", "items", "tag"):
                field = None
            elif name in UPDATE_FIELDS:
                field = name if kind == ChangeKind.UPDATE else None
            elif name in ("kind", "merge_target", "rollback_to", "confirm_dependents"):
                field = name
            else:
                field = None
            if field is None and name not in ("__all__", "changes", "items", "tag"):
                messages = [f"{Tag.field_label(name)}: {m}" for m in messages]
            self.add_error(field, messages)


class TagSearchForm(forms.Form):
    q = forms.CharField(label=gettext_lazy("Code or name"), required=False, max_length=100)

    def filter(self, queryset):
        if self.is_valid() and self.cleaned_data["q"].strip():
            text = self.cleaned_data["q"].strip()
            queryset = queryset.filter(
                Q(code__icontains=text) | Q(name__icontains=text) | Q(name_en__icontains=text)
            )
        return queryset


# ---------------------------------------------------------------------------
# Bulk upload and the audit trail


class BulkUploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("File"),
        help_text=gettext_lazy("CSV (UTF-8 or GB18030) or Excel (.xlsx); one row per change."),
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,.xlsx,.xlsm,text/csv"}),
    )
    title = forms.CharField(label=gettext_lazy("Title"), max_length=200, required=False)
    submit_now = forms.BooleanField(label=gettext_lazy("Submit for review now"), required=False, initial=True)
    confirm_dependents = forms.BooleanField(
        label=gettext_lazy("I have checked the tags that read the tags this file removes and confirm"),
        required=False,
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError(
                _("The file is larger than %(mb)s MB; split it.") % {"mb": MAX_UPLOAD_BYTES // (1024 * 1024)}
            )
        return upload


class AuditForm(forms.Form):
    start = forms.DateField(label=gettext_lazy("First day"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=gettext_lazy("Last day"), widget=forms.DateInput(attrs={"type": "date"}))
    business_line = forms.ModelChoiceField(
        label=gettext_lazy("Business line"),
        queryset=BusinessLine.objects.none(),
        required=False,
        to_field_name="code",
        empty_label=gettext_lazy("All I may view"),
    )
    brand = forms.ModelChoiceField(
        label=gettext_lazy("Brand"),
        queryset=Brand.objects.none(),
        required=False,
        to_field_name="code",
        empty_label=gettext_lazy("All I may view"),
    )
    kind = forms.ChoiceField(label=gettext_lazy("Event"), required=False)
    actor = forms.CharField(
        label=gettext_lazy("By"),
        required=False,
        max_length=150,
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("username"), "size": 10}),
    )

    def __init__(self, data=None, *, user, **kwargs):
        super().__init__(data, **kwargs)
        self.fields["business_line"].queryset = BusinessLine.objects.restrict(user, "view")
        self.fields["brand"].queryset = Brand.objects.restrict(user, "view").select_related("business_line")
        self.fields["kind"].choices = [("", _("All")), *audit_kind_choices()]

    def filters(self) -> dict:
        """The trail's filters from the cleaned data (see ``audit.AuditTrail``)."""
        data = self.cleaned_data
        return {"brand": data.get("brand"), "kind": data.get("kind") or "", "actor": data.get("actor") or ""}

    @staticmethod
    def defaults() -> dict:
        today = timezone.localdate()
        return {"start": (today - dt.timedelta(days=30)).isoformat(), "end": today.isoformat()}

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", _("The end is before the start."))
        return data


class RestructureForm(forms.Form):
    """A steward's restructure of the category tree (see :mod:`.restructure`)."""

    operation = forms.ChoiceField(
        label=gettext_lazy("Operation"),
        choices=[
            ("move", gettext_lazy("Move under another parent")),
            ("merge", gettext_lazy("Merge into another category")),
            ("rename", gettext_lazy("Rename")),
        ],
    )
    source = forms.ModelChoiceField(label=gettext_lazy("Category"), queryset=Category.objects.none())
    target = forms.ModelChoiceField(
        label=gettext_lazy("New parent or category merged into"),
        queryset=Category.objects.none(),
        required=False,
        help_text=gettext_lazy("Moving: empty puts the category at the top of the tree."),
    )
    new_name = forms.CharField(label=gettext_lazy("New name"), max_length=100, required=False)
    new_code = forms.CharField(
        label=gettext_lazy("New code"),
        max_length=30,
        required=False,
        help_text=gettext_lazy(
            "The domain part of tag codes: the tags are recoded, their old codes kept as aliases."
        ),
    )
    title = forms.CharField(label=gettext_lazy("Title"), max_length=200, required=False)
    request_description = forms.CharField(
        label=gettext_lazy("Why"), required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        paths = Category.path_names()
        for name in ("source", "target"):
            field = self.fields[name]
            field.queryset = Category.objects.order_by("order", "code")
            field.label_from_instance = lambda c: paths.get(c.pk, c.name)

    def add_service_errors(self, exc) -> None:
        for name, messages in getattr(exc, "message_dict", {"__all__": exc.messages}).items():
            for message in messages:
                self.add_error(name if name in self.fields else None, message)
