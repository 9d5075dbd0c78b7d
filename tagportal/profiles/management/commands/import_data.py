from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tagportal.catalog.models import Brand
from tagportal.profiles import imports
from tagportal.profiles.choices import ImportKind, ImportStatus

from ._progress import ProgressPrinter

#: Bad rows printed (all are in the job's report).
SHOWN_ERRORS = 30


class Command(BaseCommand):
    help = (
        "Import customers, identities, events or orders from a CSV or Parquet file into a brand. "
        "All or nothing: bad rows are listed with their row number (the header is row 1) and nothing is "
        "written. Rows whose client_id was imported before are skipped, so a file can be sent again."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="a .csv or .parquet file")
        parser.add_argument("--brand", required=True, help="brand code")
        parser.add_argument("--kind", required=True, choices=ImportKind.values)
        parser.add_argument("--user", help="username recorded on the import job (and checked for permission)")

    def handle(self, *args, file, brand, kind, user=None, **options):
        target = Brand.objects.filter(code=brand).first()
        if target is None:
            raise CommandError(f"unknown brand {brand!r}")
        person = None
        if user:
            person = get_user_model().objects.filter(username=user).first()
            if person is None:
                raise CommandError(f"unknown user {user!r}")
        try:
            open(file, "rb").close()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc}") from exc
        self.stdout.write(f"Importing {kind} from {file} into {target.code}")
        job = imports.import_file(target, kind, file, user=person, progress=ProgressPrinter(self.stdout))
        report(self, job)
        if job.status != ImportStatus.SUCCEEDED:
            raise CommandError(f"import job {job.pk} failed; nothing was written")


def report(command, job) -> None:
    command.stdout.write(
        f"Job {job.pk}: {job.status}; rows {job.rows_total:,}, imported {job.rows_ok:,}, "
        f"already imported {job.rows_skipped:,}, bad {job.rows_bad:,}"
    )
    if job.created_counts:
        created = ", ".join(f"{name} {count:,}" for name, count in job.created_counts.items())
        command.stdout.write(f"Created: {created}")
    if job.message:
        command.stderr.write(job.message)
    for error in job.errors[:SHOWN_ERRORS]:
        column = f" [{error['column']}]" if error.get("column") else ""
        command.stderr.write(f"  row {error.get('row')}{column}: {error.get('message')}")
    if len(job.errors) > SHOWN_ERRORS or job.rows_bad > SHOWN_ERRORS:
        command.stderr.write(f"  … {job.rows_bad:,} bad rows in all (see the job's report)")
