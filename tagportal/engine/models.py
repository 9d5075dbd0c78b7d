"""Tag results and their computation state.

- :class:`TagComputation`: one per tag. The current result (coverage, distribution,
  drift, per-person numbers) and the state of its computation in PostHog's style:
  ``pending_version`` is bumped when a computation is enqueued and handed to the
  task; a task that finds it moved on exits early (superseded).
- :class:`TagValueBitmap`: the current result itself, one Roaring bitmap of OneIDs
  per value. Swapped atomically: a failing run leaves the previous rows in place.
- :class:`TagRun`: the history, one row per tag per run (success, failure or
  superseded) with its duration, rows read, peak memory, coverage and error.

These are computed data, not edited data: they carry no simple-history (a result is
rewritten on every run; :class:`TagRun` already is its history).
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from tagportal.core.models import ComputationStateMixin
from tagportal.core.permissions import tag_scope
from tagportal.core.querysets import RestrictedQuerySet

from .choices import RunStatus

#: A run whose distribution moved by more than this PSI against the previous run is flagged as drifting.
DRIFT_PSI_THRESHOLD = 0.2

TAG_SCOPE = tag_scope("tag")


def pack_numbers(numbers: pd.Series | None) -> bytes | None:
    """Per-person numbers (a float Series indexed by OneID) as a compressed ``.npz``."""
    if numbers is None:
        return None
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        oneids=numbers.index.to_numpy(dtype="int64"),
        values=numbers.to_numpy(dtype="float64"),
    )
    return buffer.getvalue()


def unpack_numbers(data: bytes | memoryview | None) -> pd.Series | None:
    """The inverse of :func:`pack_numbers`: a float Series indexed by OneID, ascending."""
    if data is None:
        return None
    with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as npz:
        index = pd.Index(npz["oneids"], name="oneid")
        return pd.Series(npz["values"], index=index, dtype="float64")


class TagComputation(ComputationStateMixin):
    """The current result of a tag and the state of its computation (the state's fields
    come from :class:`~tagportal.core.models.ComputationStateMixin`)."""

    tag = models.OneToOneField(
        "catalog.Tag", on_delete=models.CASCADE, related_name="computation", verbose_name=_("tag")
    )
    version = models.PositiveIntegerField(
        _("result version"),
        null=True,
        blank=True,
        help_text=_("The published version of the tag the current result was computed from."),
    )
    value_type = models.CharField(
        _("value type"), max_length=10, blank=True, help_text=_("The value type of the current result.")
    )
    population = models.PositiveIntegerField(_("population"), null=True, blank=True)
    coverage = models.FloatField(_("coverage"), null=True, blank=True)
    distribution = models.JSONField(_("distribution"), default=dict, blank=True)
    psi = models.FloatField(
        _("PSI"), null=True, blank=True, help_text=_("Population stability index against the previous run.")
    )
    drift_flag = models.BooleanField(_("drifting"), default=False)
    numbers = models.BinaryField(_("numbers"), null=True, blank=True, editable=False)

    objects = RestrictedQuerySet.as_manager()
    scope = TAG_SCOPE

    class Meta:
        ordering = ["tag__brand__code", "tag__code"]
        verbose_name = _("tag computation")
        verbose_name_plural = _("tag computations")
        permissions = [("run_compute", _("Can start tag computations"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(coverage__isnull=True) | (Q(coverage__gte=0) & Q(coverage__lte=1)),
                name="computation_coverage_is_a_share",
            ),
        ]

    def __str__(self):
        return str(self.tag)

    @classmethod
    def table_name(cls) -> str:
        """The database table of computation states, for the few queries written in SQL."""
        return cls._meta.db_table

    @property
    def has_result(self) -> bool:
        return self.version is not None

    def number_series(self) -> pd.Series | None:
        return unpack_numbers(self.numbers)


class TagValueBitmap(models.Model):
    """The OneIDs holding one value of a tag (a serialized pyroaring BitMap)."""

    computation = models.ForeignKey(
        TagComputation, on_delete=models.CASCADE, related_name="bitmaps", verbose_name=_("computation")
    )
    value = models.CharField(_("value"), max_length=200)
    bitmap = models.BinaryField(_("bitmap"), editable=False)
    count = models.PositiveIntegerField(_("people"), default=0)

    objects = RestrictedQuerySet.as_manager()
    scope = tag_scope("computation__tag")

    class Meta:
        ordering = ["computation_id", "value"]
        verbose_name = _("tag value bitmap")
        verbose_name_plural = _("tag value bitmaps")
        constraints = [
            models.UniqueConstraint(
                fields=["computation", "value"], name="bitmap_value_unique_per_computation"
            )
        ]

    def __str__(self):
        return f"{self.computation} = {self.value} ({self.count})"


class TagRun(models.Model):
    """One computation of one tag: the history kept for quality monitoring."""

    tag = models.ForeignKey(
        "catalog.Tag", on_delete=models.CASCADE, related_name="runs", verbose_name=_("tag")
    )
    tag_version = models.PositiveIntegerField(_("tag version"), null=True, blank=True)
    brand = models.ForeignKey(
        "catalog.Brand", on_delete=models.CASCADE, related_name="tag_runs", verbose_name=_("brand")
    )
    pending_version = models.PositiveIntegerField(_("request"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=12, choices=RunStatus.choices)
    started_at = models.DateTimeField(_("started"))
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_s = models.FloatField(_("duration (s)"), null=True, blank=True)
    evaluate_s = models.FloatField(
        _("evaluation (s)"), null=True, blank=True, help_text=_("This tag's share of the evaluation.")
    )
    rows_read = models.BigIntegerField(_("rows read"), null=True, blank=True)
    peak_memory_mb = models.FloatField(_("peak memory (MB)"), null=True, blank=True)
    population = models.PositiveIntegerField(_("population"), null=True, blank=True)
    coverage = models.FloatField(_("coverage"), null=True, blank=True)
    distribution = models.JSONField(_("distribution"), default=dict, blank=True)
    psi = models.FloatField(_("PSI"), null=True, blank=True)
    drift_flag = models.BooleanField(_("drifting"), default=False)
    error = models.TextField(_("error"), blank=True)
    partitions = models.PositiveSmallIntegerField(_("partitions"), default=1)

    objects = RestrictedQuerySet.as_manager()
    scope = TAG_SCOPE

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = _("tag run")
        verbose_name_plural = _("tag runs")
        constraints = [
            models.CheckConstraint(condition=Q(status__in=RunStatus.values), name="tag_run_status_valid"),
        ]
        indexes = [
            models.Index(fields=["tag", "-started_at"], name="tag_run_tag_started"),
            models.Index(fields=["brand", "status", "-started_at"], name="tag_run_brand_status"),
        ]

    def __str__(self):
        return f"{self.tag.code} v{self.tag_version} {self.get_status_display()} {self.started_at:%Y-%m-%d %H:%M}"
