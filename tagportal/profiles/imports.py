"""Import jobs: a file of people, identities, events or orders checked by
:mod:`.importers`, its people resolved and its rows written by :mod:`.services`, and
the job's progress and report kept on :class:`~.models.ImportJob`.

The admin, the API, the commands and the Celery task start imports through these.
"""

from __future__ import annotations

import logging
import time as _time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from tagportal.catalog.models import Brand
from tagportal.core import background, uploads
from tagportal.core.permissions import may_add_into

from . import importers, services
from .choices import ImportKind, ImportStatus
from .models import Event, ImportJob, Order
from .services import Progress

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    kind: str
    rows_total: int = 0
    rows_ok: int = 0
    rows_skipped: int = 0
    rows_bad: int = 0
    errors: list[dict] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and not self.message


class ProgressWriter:
    """Keeps ``ImportJob.progress`` current while an import runs. Inside the import's
    transaction the row is written over a second connection on PostgreSQL, so the
    admin shows progress before the import commits."""

    def __init__(self, job: ImportJob | None, callback: Progress | None = None):
        self.job = job
        self.callback = callback or services.no_progress
        self.percent = -1
        self.stage = ""
        self.side = None

    def __call__(self, done: int, total: int, stage: str) -> None:
        self.callback(done, total, stage)
        if self.job is None:
            return
        weights = {"reading": (0, 5), "checking": (5, 15), "linking": (15, 30), "writing": (30, 100)}
        low, high = weights.get(stage, (0, 100))
        percent = int(low + (high - low) * (done / total if total else 1))
        if percent == self.percent and stage == self.stage:
            return
        self.percent, self.stage = percent, stage
        self._write(percent, stage)

    def _write(self, percent: int, stage: str) -> None:
        if connection.in_atomic_block and connection.vendor == "postgresql":
            if self.side is None:
                self.side = connections.create_connection(DEFAULT_DB_ALIAS)
            table = self.side.ops.quote_name(ImportJob._meta.db_table)
            with self.side.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {table} SET progress = %s, stage = %s WHERE id = %s",
                    [percent, stage, self.job.pk],
                )
        else:
            ImportJob.objects.filter(pk=self.job.pk).update(progress=percent, stage=stage)

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
            self.side = None


def import_frame(
    brand: Brand,
    kind: str,
    frame: pd.DataFrame,
    *,
    job: ImportJob | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``frame`` (see :mod:`.importers` for the columns) into ``brand``.

    All or nothing: when a row is bad, the report lists the bad rows and nothing is
    written. Rows whose ``client_id`` was imported before are skipped, so sending a
    file again adds nothing. An identity nobody holds yet creates a person.
    """
    progress = progress or services.no_progress
    report = ImportReport(kind=kind, rows_total=len(frame))
    progress(0, len(frame), "checking")
    prepared = importers.prepare(kind, frame)
    progress(len(frame), len(frame), "checking")
    if not prepared.ok:
        report.errors = prepared.errors
        report.rows_bad = prepared.rows_bad or len(frame)
        return report
    data, links = prepared.data, prepared.links
    keep = np.ones(len(data), dtype=bool)
    with transaction.atomic():
        # One import of a brand at a time: a file sent twice at once (or two files
        # sharing client ids) writes each client id once and the others skip it.
        services.lock_brand(brand)
        if kind in (ImportKind.EVENTS, ImportKind.ORDERS):
            model = Event if kind == ImportKind.EVENTS else Order
            seen = services.existing_client_ids(model, brand, data["client_id"].tolist())
            keep = ~data["client_id"].isin(seen).to_numpy(dtype=bool)
            report.rows_skipped = int((~keep).sum())
        progress(0, 1, "linking")
        kept_links = links[keep[links["pos"].to_numpy()]] if len(links) else links
        resolved = services.resolve_identities(brand, kept_links.rename(columns={"pos": "record"}), job=job)
        progress(1, 1, "linking")
        per_row = resolved.records.set_index("record")
        rows = data[keep].join(per_row, how="left")
        report.created = {
            "customers": resolved.customers_created,
            "identities": resolved.identities_created,
            "merges": len(resolved.merges),
        }
        if kind == ImportKind.EVENTS:
            report.created["events"] = services.write_events(brand, rows, progress=progress)
            report.rows_ok = len(rows)
        elif kind == ImportKind.ORDERS:
            report.created["orders"] = services.write_orders(brand, rows, progress=progress)
            report.rows_ok = len(rows)
        else:
            touched = rows["new"].to_numpy() > 0
            if kind == ImportKind.CUSTOMERS:
                changed = services.set_attributes(brand, rows, progress=progress)
                touched |= rows["customer_id"].isin(changed).to_numpy(dtype=bool)
            merged = {m.kept_id for m in resolved.merges}
            touched |= rows["customer_id"].isin(merged).to_numpy(dtype=bool)
            progress(len(rows), len(rows), "writing")
            report.rows_ok = int(touched.sum())
            report.rows_skipped = len(rows) - report.rows_ok
    return report


def check_may_import(user, brand: Brand) -> None:
    if user is not None and not may_add_into(user, ImportJob, brand):
        raise PermissionDenied(_("You may not import data into the brand “%(brand)s”.") % {"brand": brand})


def create_job(
    brand: Brand, kind: str, *, file_name: str = "", user=None, upload=None, job: ImportJob | None = None
) -> ImportJob:
    """A pending import job (``job``: an unsaved instance to fill, e.g. the admin's)."""
    if kind not in ImportKind.values:
        raise ValidationError({"kind": _("Unknown import kind.")})
    check_may_import(user, brand)
    job = job if job is not None else ImportJob()
    job.brand = brand
    job.kind = kind
    job.file_name = (file_name or "")[:255]
    job.status = ImportStatus.PENDING
    job.created_by = user if user is not None and user.is_authenticated else None
    if upload is not None:
        job.upload = upload
    job._change_reason = _("Import queued")
    job.save()
    return job


def run_job(
    job: ImportJob,
    source,
    *,
    progress: Progress | None = None,
    caps: importers.Caps = importers.NO_CAPS,
) -> ImportJob:
    """Run an import job on ``source`` (a path, a binary file object or a DataFrame) and
    store its report on the job. A file past ``caps`` fails the job unread."""
    writer = ProgressWriter(job, progress)
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.RUNNING, started_at=timezone.now(), progress=0, stage="reading"
    )
    started = _time.perf_counter()
    try:
        writer(0, 1, "reading")
        frame = (
            source if isinstance(source, pd.DataFrame) else importers.read_table(source, job.file_name, caps)
        )
        writer(1, 1, "reading")
        report = import_frame(job.brand, job.kind, frame, job=job, progress=writer)
    except importers.ImportFileError as exc:
        report = ImportReport(
            kind=job.kind, errors=[{"row": exc.row, "column": "", "message": str(exc)}], message=str(exc)
        )
    except ValidationError as exc:
        report = ImportReport(kind=job.kind, message="; ".join(exc.messages))
    except Exception as exc:
        log.exception("import job %s failed", job.pk)
        report = ImportReport(kind=job.kind, message=_("The import failed: %(error)s") % {"error": exc})
    finally:
        writer.close()
    job.refresh_from_db()
    job.status = ImportStatus.SUCCEEDED if report.ok else ImportStatus.FAILED
    job.rows_total = report.rows_total
    job.rows_ok = report.rows_ok if report.ok else 0
    job.rows_skipped = report.rows_skipped if report.ok else 0
    job.rows_bad = min(report.rows_bad, report.rows_total)
    job.errors = report.errors
    job.created_counts = report.created if report.ok else {}
    job.message = report.message
    job.progress = 100 if report.ok else job.progress
    job.stage = "done" if report.ok else "failed"
    job.finished_at = timezone.now()
    job._change_reason = _("Import finished in %(seconds).1f s") % {"seconds": _time.perf_counter() - started}
    job.save()
    return job


def import_file(
    brand: Brand,
    kind: str,
    source,
    *,
    file_name: str = "",
    user=None,
    progress: Progress | None = None,
) -> ImportJob:
    """Import a CSV or Parquet file now; answers the finished job with its report."""
    if not file_name:
        file_name = (
            Path(str(source)).name if isinstance(source, str | Path) else getattr(source, "name", "") or ""
        )
    job = create_job(brand, kind, file_name=file_name, user=user)
    return run_job(job, source, progress=progress)


class UploadRefused(ValidationError):
    """An upload refused before it is stored: ``errors`` lists ``{row, column, message}``."""

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message, code="invalid_file")
        self.errors = errors or [{"row": None, "column": "", "message": message}]


def check_upload(kind: str, upload) -> importers.Inspection:
    """The cheap checks of an upload, in the request, before anything is stored: its size,
    its format, its header, its rows and columns against the caps (a Parquet file by its
    metadata, a CSV by its lines). Raises :class:`UploadRefused`."""
    try:
        uploads.check_size(upload)
    except uploads.UploadError as exc:
        raise UploadRefused(exc.message) from exc
    name = getattr(upload, "name", "") or ""
    source = upload.open("rb") if hasattr(upload, "open") else upload
    try:
        inspection = importers.inspect(source, name, importers.upload_caps())
    except importers.ImportFileError as exc:
        raise UploadRefused(str(exc), [{"row": exc.row, "column": "", "message": str(exc)}]) from exc
    finally:
        source.seek(0)
    problems = importers.header_errors(kind, inspection.columns)
    if problems:
        raise UploadRefused(
            _("The header of the file is wrong; nothing was imported: %(problems)s")
            % {"problems": "; ".join(f"{p['column'] or '—'}: {p['message']}" for p in problems[:10])},
            problems,
        )
    return inspection


def queue_import(brand: Brand, kind: str, upload, *, user=None, job: ImportJob | None = None) -> ImportJob:
    """Check an upload cheaply (:func:`check_upload`), store it and run its import in the
    background once the transaction commits (a Celery task; on a thread of this process
    when no broker is configured, see :mod:`tagportal.core.background`). The file is
    deleted once imported."""
    check_may_import(user, brand)
    inspection = check_upload(kind, upload)
    if job is None:
        job = ImportJob()
    job.rows_total = inspection.rows
    job = create_job(brand, kind, file_name=getattr(upload, "name", ""), user=user, upload=upload, job=job)
    from .tasks import run_import_job

    background.queue_after_commit(run_import_job, job.pk)
    return job


def run_stored_job(job_id: int) -> ImportJob | None:
    """Run a queued job from its stored upload, then delete the upload."""
    job = ImportJob.objects.select_related("brand").filter(pk=job_id).first()
    if job is None or job.status != ImportStatus.PENDING:
        return job  # gone, or already run (a task delivered twice)
    try:
        if not job.upload:
            raise importers.ImportFileError(_("The uploaded file is missing."))
        with job.upload.open("rb") as handle:
            job = run_job(job, handle, caps=importers.upload_caps())
    except importers.ImportFileError as exc:
        ImportJob.objects.filter(pk=job.pk).update(status=ImportStatus.FAILED, message=str(exc))
    finally:
        if job.upload:
            job.upload.delete(save=False)
            ImportJob.objects.filter(pk=job.pk).update(upload="")
    job.refresh_from_db()
    return job
