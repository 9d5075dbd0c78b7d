"""Forms of the tag dictionary: a friendly editor for values, and the tag form."""

from __future__ import annotations

import json

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.core.permissions import containers_for_add

from .models import Brand, Tag


def _number(text: str, line: int):
    text = text.strip()
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError as exc:
        raise ValidationError(_("Line %(n)s: %(text)r is not a number.") % {"n": line, "text": text}) from exc
    return int(value) if value.is_integer() else value


class ValuesField(forms.Field):
    """Values as lines: ``code | 中文 | English`` (enum) or ``code | 中文 | English | min | max``
    (number buckets). Blank lines are ignored."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 80, "class": "vLargeTextField tp-values"})
    default_help_text = gettext_lazy(
        "One value per line: code | 中文标签 | English label. Number buckets add | min | max "
        "(min included, max excluded; leave one empty for an open end)."
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("help_text", self.default_help_text)
        super().__init__(*args, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, str):
            return value
        lines = []
        for item in value or []:
            parts = [item.get("code", ""), item.get("label", ""), item.get("label_en", "")]
            if "min" in item or "max" in item:
                parts += [
                    "" if item.get("min") is None else str(item["min"]),
                    "" if item.get("max") is None else str(item["max"]),
                ]
            lines.append(" | ".join(parts))
        return "\n".join(lines)

    def to_python(self, value):
        if isinstance(value, list):
            return value
        values = []
        for number, raw in enumerate((value or "").splitlines(), start=1):
            if not raw.strip():
                continue
            parts = [p.strip() for p in raw.split("|")]
            if len(parts) not in (2, 3, 5):
                raise ValidationError(
                    _("Line %(n)s: expected “code | 中文 | English” or “code | 中文 | English | min | max”.")
                    % {"n": number}
                )
            item = {"code": parts[0], "label": parts[1]}
            if len(parts) >= 3 and parts[2]:
                item["label_en"] = parts[2]
            if len(parts) == 5:
                low, high = _number(parts[3], number), _number(parts[4], number)
                if low is not None:
                    item["min"] = low
                if high is not None:
                    item["max"] = high
                if low is None and high is None:
                    item["min"] = None
            values.append(item)
        return values


class PrettyJSONField(forms.JSONField):
    def prepare_value(self, value):
        if isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False, indent=2)


class TagAdminForm(forms.ModelForm):
    values = ValuesField(label=gettext_lazy("values"))
    definition = PrettyJSONField(
        label=gettext_lazy("definition"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 14, "cols": 80, "class": "vLargeTextField tp-json"}),
        help_text=gettext_lazy(
            'A rule document, e.g. {"type": "metric", "metric": {"agg": "count", "source": "events", '
            '"where": [{"field": "type", "op": "eq", "value": "store_visit"}], "window": {"last_days": 90}}}. '
            'Manual tags: {"type": "manual"}.'
        ),
    )

    class Meta:
        model = Tag
        fields = [
            "name", "name_en", "code", "description", "brand", "category", "regions", "owner",
            "kind", "value_type", "values", "unit", "refresh_mode", "schedule", "definition",
        ]  # fmt: skip

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        if "code" in self.fields:  # absent on read-only (view) forms
            self.fields["code"].required = False
            self.fields["code"].help_text = _(
                "Leave empty to have it suggested from the Chinese name (pinyin) following the category's naming rule."
            )
        if user is not None and "brand" in self.fields:
            allowed = containers_for_add(user, Tag, Brand).select_related("business_line")
            if self.instance.pk:
                allowed = allowed | Brand.objects.filter(pk=self.instance.brand_id)
            self.fields["brand"].queryset = allowed.distinct()
        if "definition" in self.fields and self.instance.pk is None and not self.initial.get("definition"):
            self.initial["definition"] = {}

    def clean_definition(self):
        value = self.cleaned_data.get("definition")
        return {} if value in (None, "") else value

    def _post_clean(self):
        # Fill derived fields before the model validates itself.
        brand = self.cleaned_data.get("brand")
        if brand is not None:
            self.instance.business_line = brand.business_line
        if not self.cleaned_data.get("code") and self.cleaned_data.get("name"):
            from .services import suggest_code

            self.cleaned_data["code"] = suggest_code(
                self.cleaned_data["name"], self.cleaned_data.get("category"), brand
            )
        super()._post_clean()


class ApplyTemplateForm(forms.Form):
    template = forms.ChoiceField(label=gettext_lazy("industry template"))

    def __init__(self, *args, **kwargs):
        from .templates import available_packs

        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [
            (key, f"{pack.name} · {pack.name_en} ({len(pack.tags)})")
            for key, pack in available_packs().items()
        ]
