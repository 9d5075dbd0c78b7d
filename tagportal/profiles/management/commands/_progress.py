"""Progress lines for long imports on the command line."""

from __future__ import annotations

import time


class ProgressPrinter:
    """A ``progress(done, total, stage)`` callback writing a line per stage and every
    few seconds (or every 10 %)."""

    def __init__(self, stdout, every: float = 2.0):
        self.stdout = stdout
        self.every = every
        self.stage = None
        self.last = 0.0
        self.percent = -10

    def __call__(self, done: int, total: int, stage: str) -> None:
        now = time.monotonic()
        percent = int(100 * done / total) if total else 100
        if (
            stage != self.stage
            or percent >= self.percent + 10
            or now - self.last >= self.every
            or done == total
        ):
            if stage == self.stage and percent == self.percent:
                return
            self.stdout.write(f"  {stage:<9} {done:>12,}/{total:,} ({percent}%)")
            self.stage, self.last, self.percent = stage, now, percent
