import datetime as dt

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tagportal.catalog.models import Brand, Tag
from tagportal.engine import partitioning, services
from tagportal.engine.choices import RunStatus


def _coverage(value) -> str:
    return "—" if value is None else f"{value:.1%}"


def _values(distribution, limit: int = 6) -> str:
    items = sorted((distribution or {}).items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{key}={count}" for key, count in items[:limit])
    return text + (", …" if len(items) > limit else "")


class Command(BaseCommand):
    help = gettext_lazy(
        "Compute a brand's published tags now (or queue the computation) and print a table per tag."
    )

    def add_arguments(self, parser):
        parser.add_argument("--brand", required=True, help=_("brand code"))
        parser.add_argument(
            "--tag", action="append", dest="tags", default=[], help=_("tag code (repeatable; default: all)")
        )
        parser.add_argument(
            "--partitions",
            type=int,
            default=None,
            help=_(
                "number of OneID ranges (default: as many as the memory budget TAGPORTAL_COMPUTE_PARTITION_MB needs)"
            ),
        )
        parser.add_argument(
            "--as-of", dest="as_of", help=_("compute as of this moment (ISO date or datetime; default: now)")
        )
        parser.add_argument(
            "--enqueue",
            action="store_true",
            help=_("queue the computation for a Celery worker instead of computing here"),
        )

    def handle(self, *args, brand, tags, partitions, as_of=None, enqueue=False, **options):
        try:
            target = Brand.objects.get(code=brand)
        except Brand.DoesNotExist as exc:
            raise CommandError(_("Unknown brand %(brand)r.") % {"brand": brand}) from exc
        if partitions is not None and partitions < 1:
            raise CommandError(_("--partitions must be at least 1."))
        if partitions is None:
            partitions = partitioning.partitions_for(target)
        tag_ids = None
        if tags:
            found = dict(
                Tag.objects.published().filter(brand=target, code__in=tags).values_list("code", "pk")
            )
            unknown = sorted(set(tags) - set(found))
            if unknown:
                raise CommandError(
                    _("Not published tags of %(brand)s: %(codes)s")
                    % {"brand": brand, "codes": ", ".join(unknown)}
                )
            tag_ids = list(found.values())
        moment = None
        if as_of:
            try:
                moment = dt.datetime.fromisoformat(as_of)
            except ValueError as exc:
                raise CommandError(_("--as-of: not an ISO date or datetime: %(v)r") % {"v": as_of}) from exc
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=services.BEIJING)
        if enqueue:
            pending = services.enqueue_compute(target, tag_ids, partitions=partitions)
            if pending is None:
                raise CommandError(_("The brand has no published tags to compute."))
            self.stdout.write(
                _("Requested computation %(pending)s of %(brand)s.") % {"pending": pending, "brand": brand}
            )
            return
        report = services.compute_brand(target, tag_ids=tag_ids, as_of=moment, partitions=partitions)
        header = ("tag", "v", "status", "coverage", "people", "seconds", "values / error")
        rows = []
        for run in sorted(report.runs, key=lambda r: r.tag.code):
            detail = _values(run.distribution) if run.status == RunStatus.SUCCESS else run.error
            rows.append(
                (
                    run.tag.code,
                    str(run.tag_version or ""),
                    run.status,
                    _coverage(run.coverage),
                    str(run.population or 0),
                    f"{run.evaluate_s or 0:.3f}",
                    detail.replace("\n", " ")[:120],
                )
            )
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
        self.stdout.write(line)
        self.stdout.write("  ".join("-" * w for w in widths))
        for row in rows:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        failed = sum(r.status == RunStatus.FAILED for r in report.runs)
        self.stdout.write(
            _(
                "%(brand)s: %(n)s tags, %(failed)s failed; %(people)s people, %(rows)s rows read "
                "in %(seconds).2f s (request %(pending)s, %(partitions)s partitions)."
            )
            % {
                "brand": brand,
                "n": len(report.runs),
                "failed": failed,
                "people": report.population,
                "rows": report.rows_read,
                "seconds": report.seconds,
                "pending": report.pending_version,
                "partitions": partitions,
            }
        )
