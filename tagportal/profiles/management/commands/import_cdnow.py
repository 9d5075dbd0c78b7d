from django.core.management.base import BaseCommand, CommandError

from tagportal.catalog.models import Brand
from tagportal.profiles import cdnow, imports
from tagportal.profiles.choices import ImportKind, ImportStatus

from ._progress import ProgressPrinter
from .import_data import report


class Command(BaseCommand):
    help = (
        "Import the CDNOW purchase data (one order per line; the customer id becomes a CRM member id) "
        "into a brand. Defaults to the sample shipped in fixtures/cdnow/. Importing twice adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--brand", required=True, help="brand code")
        parser.add_argument(
            "--file", help="CDNOW_master.txt or CDNOW_sample.txt (default: the shipped sample)"
        )

    def handle(self, *args, brand, file=None, **options):
        target = Brand.objects.filter(code=brand).first()
        if target is None:
            raise CommandError(f"unknown brand {brand!r}")
        path = file or str(cdnow.default_file())
        try:
            orders = cdnow.to_orders(cdnow.read(path))
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        self.stdout.write(f"Importing {len(orders):,} CDNOW orders from {path} into {target.code}")
        job = imports.create_job(target, ImportKind.ORDERS, file_name=path.rsplit("/", 1)[-1])
        job = imports.run_job(job, orders, progress=ProgressPrinter(self.stdout))
        report(self, job)
        if job.status != ImportStatus.SUCCEEDED:
            raise CommandError(f"import job {job.pk} failed; nothing was written")
