"""Admin pages of the model registry: models with their output tags (history kept),
a "run now" action, and the runs read-only with their metrics and charts' data. A
scoring endpoint's secret is typed in a password field and never shown back (the page
says whether one is set)."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html
from django.utils.translation import gettext_lazy, ngettext

from tagportal.core.admin import (
    HistoryAdmin,
    ReadOnlyAdminMixin,
    RestrictedAdminMixin,
    ScopedRelatedFieldListFilter,
)

from . import services
from .choices import ModelKind
from .models import ModelOutput, ModelRun, PredictiveModel


def _pretty(data) -> str:
    return format_html("<pre>{}</pre>", json.dumps(data or {}, ensure_ascii=False, indent=2))


class ModelOutputInline(admin.TabularInline):
    model = ModelOutput
    extra = 0
    fields = ("key", "tag")
    readonly_fields = ("key", "tag")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class PredictiveModelForm(forms.ModelForm):
    secret = forms.CharField(
        label=gettext_lazy("new secret"),
        required=False,
        strip=False,
        min_length=services.SECRET_MIN_LENGTH,
        max_length=services.SECRET_MAX_LENGTH,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=gettext_lazy(
            "Scoring endpoint models only: the HMAC secret requests are signed with. Stored "
            "encrypted and never shown; leave blank to keep the one set."
        ),
    )

    class Meta:
        model = PredictiveModel
        fields = ("brand", "kind", "name", "parameters", "schedule", "metric_floor", "max_drop", "is_active")

    def clean(self):
        data = super().clean()
        if (
            data.get("secret")
            and data.get("kind", getattr(self.instance, "kind", None)) != ModelKind.ENDPOINT
        ):
            self.add_error("secret", gettext_lazy("Only a scoring endpoint model has a secret."))
        return data


@admin.register(PredictiveModel)
class PredictiveModelAdmin(RestrictedAdminMixin, HistoryAdmin):
    list_display = ("name", "brand", "kind", "schedule", "metric_floor", "max_drop", "is_active", "last_run")
    list_filter = ("kind", "is_active", ("brand", ScopedRelatedFieldListFilter))
    list_select_related = ("brand",)
    search_fields = ("name", "brand__code", "brand__name")
    form = PredictiveModelForm
    fields = (
        "brand",
        "kind",
        "name",
        "parameters",
        "schedule",
        "metric_floor",
        "max_drop",
        "is_active",
        "secret",
        "secret_set",
    )
    readonly_fields = ("secret_set",)
    inlines = [ModelOutputInline]
    actions = ["run_now"]

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        if form.cleaned_data.get("secret"):
            services.set_endpoint_secret(obj, form.cleaned_data["secret"], user=request.user)

    @admin.display(description=gettext_lazy("secret set"), boolean=True)
    def secret_set(self, obj):
        return bool(obj and obj.pk and obj.kind == ModelKind.ENDPOINT and services.has_endpoint_secret(obj))

    @admin.display(description=gettext_lazy("last run"))
    def last_run(self, obj):
        run = obj.runs.order_by("-started_at").first()
        return "—" if run is None else f"{run.get_status_display()} {run.started_at:%Y-%m-%d %H:%M}"

    @admin.action(description=gettext_lazy("Run now"), permissions=["run"])
    def run_now(self, request, queryset):
        with transaction.atomic():
            for model in queryset:
                services.request_run(model)
        count = queryset.count()
        self.message_user(
            request,
            ngettext("%(n)s model queued to run.", "%(n)s models queued to run.", count) % {"n": count},
            messages.SUCCESS,
        )

    def has_run_permission(self, request):
        return request.user.has_perm("predictive.run_predictivemodel")


@admin.register(ModelRun)
class ModelRunAdmin(ReadOnlyAdminMixin, RestrictedAdminMixin, admin.ModelAdmin):
    list_display = ("model", "status", "started_at", "duration_s", "key_metric", "people_scored")
    list_filter = ("status", ("model__brand", ScopedRelatedFieldListFilter))
    list_select_related = ("model", "model__brand")
    search_fields = ("model__name", "error")
    fields = (
        "model",
        "status",
        "as_of",
        "started_at",
        "finished_at",
        "duration_s",
        "peak_memory_mb",
        "people_scored",
        "key_metric",
        "window_pretty",
        "features_pretty",
        "parameters_pretty",
        "metrics_pretty",
        "charts_pretty",
        "artefact_sha256",
        "error",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("artefact")

    @admin.display(description=gettext_lazy("window"))
    def window_pretty(self, obj):
        return _pretty(obj.window)

    @admin.display(description=gettext_lazy("features"))
    def features_pretty(self, obj):
        return _pretty(obj.features)

    @admin.display(description=gettext_lazy("fitted parameters"))
    def parameters_pretty(self, obj):
        return _pretty(obj.parameters)

    @admin.display(description=gettext_lazy("metrics"))
    def metrics_pretty(self, obj):
        return _pretty(obj.metrics)

    @admin.display(description=gettext_lazy("charts"))
    def charts_pretty(self, obj):
        return _pretty(obj.charts)
