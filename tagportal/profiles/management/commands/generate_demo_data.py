import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tagportal.catalog.models import Brand
from tagportal.profiles import generator
from tagportal.profiles.schema import CHANNELS

from ._progress import ProgressPrinter


class Command(BaseCommand):
    help = (
        "Generate demo people, identities, events and orders (deterministic by seed) and load them into a "
        "brand (running it again adds nothing), or write them as Parquet files with --parquet."
    )

    def add_arguments(self, parser):
        parser.add_argument("--brand", help="brand code (required unless --parquet)")
        parser.add_argument("--people", type=int, default=2000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--events-per-person", type=float, default=10)
        parser.add_argument(
            "--industry", choices=generator.INDUSTRIES, help="default: the brand's demo template"
        )
        parser.add_argument("--channels", help=f"comma-separated subset of: {', '.join(CHANNELS)}")
        parser.add_argument(
            "--parquet", metavar="DIR", help="write customers/identities/events/orders.parquet"
        )

    def handle(self, *args, **options):
        people, seed = options["people"], options["seed"]
        if people < 1:
            raise CommandError("--people must be at least 1")
        channels = CHANNELS
        if options["channels"]:
            channels = [c.strip() for c in options["channels"].split(",") if c.strip()]
            unknown = sorted(set(channels) - set(CHANNELS))
            if unknown:
                raise CommandError(f"unknown channels: {', '.join(unknown)}")
        brand = None
        if options["brand"]:
            brand = Brand.objects.filter(code=options["brand"]).first()
            if brand is None:
                raise CommandError(f"unknown brand {options['brand']!r}")
        elif not options["parquet"]:
            raise CommandError("give --brand (load into the database) or --parquet DIR")
        industry = options["industry"] or generator.industry_for_brand(brand.code if brand else "")
        if options["parquet"]:
            self._parquet(
                Path(options["parquet"]), seed, people, options["events_per_person"], channels, industry
            )
            return
        started = time.perf_counter()
        counts = generator.load_demo(
            brand,
            people=people,
            seed=seed,
            events_per_person=options["events_per_person"],
            industry=industry,
            channels=channels,
            progress=ProgressPrinter(self.stdout),
        )
        added = ", ".join(f"{name} {count:,}" for name, count in counts.items())
        self.stdout.write(
            f"Demo data ({industry}) for {brand.code}: added {added} in {time.perf_counter() - started:.1f} s"
        )

    def _parquet(self, directory: Path, seed, people, per_person, channels, industry):
        directory.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        frames = generator.generate(seed, people, per_person, channels, industry=industry)
        generated = time.perf_counter() - started
        for name, frame in frames.items():
            frame.to_parquet(directory / f"{name}.parquet", index=False)
            self.stdout.write(f"  {name}.parquet: {len(frame):,} rows")
        self.stdout.write(
            f"Generated in {generated:.1f} s, written in {time.perf_counter() - started - generated:.1f} s"
        )
