"""Benchmark: one journey with a million people, advanced by two worker processes, one of
them killed mid-run.

The journey (a fresh PostgreSQL database, created, migrated and dropped here)::

    entry (audience) → wait 60 min → branch on a manual tag (``a`` → holdout, else → done)
      → holdout 10 % (holdout → done) → send SMS (Aliyun) → wait 12 h → send webhook → exit

People are bulk inserted (profiles, phone identities), everyone is entered with
:func:`tagportal.journeys.services.enter`, the brand's contact policy has quiet hours
21:00–09:00 (Beijing) and caps of one SMS, one webhook and one message in all per
Beijing day. The clock is moved by the driver through the stages the journey needs:
20:30 (entry → wait), 21:30 (wait → branch → holdout → send, deferred by the quiet
hours), 09:00 next day (the SMS), 21:00 (wait over; the webhook deferred), 09:00 the
day after (the webhook, exit). The workers (``--workers`` processes of this script,
``--worker`` mode) read the clock from a file and call :func:`runner.tick` in a loop;
one is killed with SIGKILL during the SMS stage (``--kill-at``: the share of that
stage's people done) and restarted; its claimed rows come back when their lease (on the
moved clock) runs out.

The SMS and webhook accounts point at the test suite's fake Aliyun server and webhook
receiver (``tests/activation/fakes*.py``) but the deliveries are left queued: the
delivery pipeline is measured by ``benchmarks/deliveries.py``; here the runner is.

Figures (read from the database at the end): ``instances``, ``advanced_per_s`` (nodes
passed by people per second of the ticking stages), ``tick_p50_ms`` / ``tick_p99_ms``
(ticks that claimed someone), ``cap_violations`` (people sent more than the cap on a
channel, or in all, in one Beijing day), ``quiet_hour_violations`` (sends and
deliveries created inside the quiet hours), ``holdout_share_error`` (|holdout share −
10 %|), ``duplicated_sends`` (deliveries of one person at one node beyond the first),
``peak_rss_mb`` (the largest of the driver and the workers), and per stage people/s.

    python benchmarks/journeys.py [--people 1000000] [--workers 2] [--limit 5000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks import harness  # noqa: E402  (after the path is set)

POSTGRES_DB = "tagportal_bench_journeys"
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
HOLDOUT_PERCENT = 10
#: 20:30 Beijing on Monday 2 March 2026.
T0 = dt.datetime(2026, 3, 2, 12, 30, tzinfo=dt.UTC)
LEASE_SECONDS = 120


def postgres_server() -> str:
    return os.environ.get("BENCH_POSTGRES_URL") or POSTGRES_SERVER


def database_url(name: str) -> str:
    return postgres_server().rsplit("/", 1)[0] + "/" + name


def stages() -> list[tuple[str, dt.datetime]]:
    day = dt.timedelta(days=1)
    return [
        ("entry", T0),
        ("wait_branch_holdout", T0 + dt.timedelta(hours=1)),  # 21:30: the send deferred
        ("send_sms", T0 + dt.timedelta(hours=12, minutes=30)),  # 09:00 next day
        ("wait_12h", T0 + day + dt.timedelta(minutes=30)),  # 21:00: the webhook deferred
        ("send_webhook_exit", T0 + day + dt.timedelta(hours=12, minutes=30)),  # 09:00
    ]


# the worker --------------------------------------------------------------------------------
def worker_main(args) -> None:
    """Tick at the clock of ``--clock`` until ``--stop`` exists; one JSON line per tick."""
    harness.setup_django()
    from tagportal.core import background
    from tagportal.journeys import runner

    background.queue_after_commit = lambda *a, **k: None  # deliveries stay queued (see above)
    clock, stop = Path(args.clock), Path(args.stop)
    with open(args.log, "a", buffering=1) as log:
        while not stop.exists():
            try:
                now = dt.datetime.fromisoformat(clock.read_text().strip())
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            started = time.perf_counter()
            moved = runner.tick(now, args.limit)
            seconds = time.perf_counter() - started
            if moved:
                log.write(json.dumps({"s": seconds, "n": moved, "rss": harness.peak_rss_mb()}) + "\n")
            else:
                time.sleep(0.1)


class Worker:
    def __init__(self, n: int, env: dict, workdir: Path, args):
        self.n, self.env, self.workdir, self.args = n, env, workdir, args
        self.process: subprocess.Popen | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "--clock",
            str(self.workdir / "clock"),
            "--stop",
            str(self.workdir / "stop"),
            "--log",
            str(self.workdir / f"worker{self.n}.jsonl"),
            "--limit",
            str(self.args.limit),
        ]
        err = open(self.workdir / f"worker{self.n}-{self.runs}.err", "w")
        self.process = subprocess.Popen(cmd, env=self.env, stderr=err, start_new_session=True, cwd=ROOT)

    def kill(self) -> None:
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.wait(timeout=120)


# the data ----------------------------------------------------------------------------------
def phone_of(oneid: int) -> str:
    return f"+8613{oneid:09d}"


def make_world(people: int, servers: dict):
    """The brand, its people (profiles, phones, a manual tag's values), accounts, policy
    and the live journey."""
    import pandas as pd
    from django.db import connection

    from tagportal.activation.models import ChannelAccount
    from tagportal.engine.services import store_values
    from tagportal.journeys.models import ContactPolicy
    from tagportal.profiles import pii
    from tagportal.profiles.choices import IdentityType
    from tests.factories import BrandFactory, BusinessLineFactory, CategoryFactory
    from tests.journeys.helpers import make_journey, manual_tag

    brand = BrandFactory(code="ruiyan", name="瑞颜", business_line=BusinessLineFactory(code="yimei"))
    world = argparse.Namespace(own_brand=brand, category=CategoryFactory(code="visit", name="到店行为"))
    oneids = list(range(1, people + 1))
    chunk = 50_000
    with connection.cursor() as cursor:
        for start in range(0, people, chunk):
            part = oneids[start : start + chunk]
            cursor.execute(
                "INSERT INTO profiles_customer (brand_id, oneid, attributes, created, last_updated) "
                "SELECT %s, o, '{}'::jsonb, now(), now() FROM unnest(%s::bigint[]) AS o",
                [brand.pk, part],
            )
    from tagportal.activation.models import ContactEntry, ContactKind
    from tagportal.core import secrets
    from tagportal.profiles.models import Customer, Identity

    fernet = secrets.multi_fernet(secrets.configured_keys("TAGPORTAL_VAULT_KEYS"), "TAGPORTAL_VAULT_KEYS")
    ids = dict(Customer.objects.filter(brand=brand).values_list("oneid", "pk"))
    for start in range(0, people, chunk):
        rows, contacts = [], []
        for oneid in oneids[start : start + chunk]:
            number = phone_of(oneid)
            contacts.append(
                ContactEntry(
                    brand=brand,
                    oneid=oneid,
                    kind=ContactKind.PHONE,
                    value_hash=pii.hash_value(IdentityType.PHONE, number),
                    ciphertext=fernet.encrypt(number.encode()).decode(),
                    masked=pii.mask(IdentityType.PHONE, number),
                )
            )
            rows.append(
                Identity(
                    brand=brand,
                    customer_id=ids[oneid],
                    type=IdentityType.PHONE,
                    app="",
                    value_hash=pii.hash_value(IdentityType.PHONE, number),
                    value="",
                    masked=pii.mask(IdentityType.PHONE, number),
                )
            )
        Identity.objects.bulk_create(rows, batch_size=5000)
        ContactEntry.objects.bulk_create(contacts, batch_size=5000)
    tag = manual_tag(world, "seg", values=[{"code": "a", "label": "甲"}, {"code": "b", "label": "乙"}])
    # 80 % hold "a" (go on), 10 % "b", 10 % no value (both: done at the branch)
    values = pd.Series(
        ["a" if o % 10 < 8 else "b" for o in oneids if o % 10 != 9],
        index=pd.Index([o for o in oneids if o % 10 != 9], dtype="int64", name="oneid"),
    )
    store_values(tag, values)

    def account(kind, settings_, secrets):
        obj = ChannelAccount(brand=brand, kind=kind, name=f"bench {kind}", settings=settings_)
        obj.merge_secrets(secrets)
        obj.full_clean()
        obj.save()
        return obj

    sms = account(
        "sms_aliyun",
        {"sign_name": "TagPortal", "region": "cn-hangzhou"},
        {"access_key_id": "LTAI-test", "access_key_secret": "aliyun-secret"},
    )
    hook = account(
        "webhook",
        {"url": servers["hook"].url_for("/hooks/tagportal")},
        {"signing_secret": "signing-secret"},
    )
    ContactPolicy.objects.update_or_create(
        brand=brand,
        defaults={
            "quiet_start": dt.time(21, 0),
            "quiet_end": dt.time(9, 0),
            "caps": {"sms_aliyun": {"day": 1}, "webhook": {"day": 1}},
            "global_day": 1,
        },
    )
    graph = {
        "nodes": [
            {"id": "in", "type": "entry", "config": {"trigger": "audience", "audience": 1}},
            {"id": "w1", "type": "wait", "config": {"mode": "duration", "minutes": 60}},
            {
                "id": "b",
                "type": "branch",
                "config": {"tag": tag.code, "cases": [{"key": "a", "values": ["a"]}]},
            },
            {"id": "h", "type": "holdout", "config": {"holdout_percent": HOLDOUT_PERCENT}},
            {
                "id": "sms",
                "type": "send",
                "config": {
                    "account": sms.pk,
                    "content": {"template_code": "SMS_100", "params": {"code": "8折"}},
                },
            },
            {"id": "w2", "type": "wait", "config": {"mode": "duration", "minutes": 720}},
            {"id": "hook", "type": "send", "config": {"account": hook.pk, "content": {"event": "journey"}}},
            {"id": "x", "type": "exit", "config": {}},
        ],
        "edges": [
            {"from": "in", "to": "w1", "port": "next"},
            {"from": "w1", "to": "b", "port": "next"},
            {"from": "b", "to": "h", "port": "a"},
            {"from": "h", "to": "sms", "port": "treatment"},
            {"from": "sms", "to": "w2", "port": "next"},
            {"from": "w2", "to": "hook", "port": "next"},
            {"from": "hook", "to": "x", "port": "next"},
        ],
        "goal": None,
    }
    journey = make_journey(brand, graph)
    return brand, journey, oneids


# the checks --------------------------------------------------------------------------------
def checks(journey) -> dict:
    from django.db import connection

    out = {}
    with connection.cursor() as cursor:
        # sends per person, channel kind and Beijing day above the caps (1 a day per kind, 1 in all)
        cursor.execute(
            """
            WITH sent AS (
              SELECT i.oneid, s.detail->>'kind' AS kind, (s.at AT TIME ZONE 'Asia/Shanghai')::date AS day
              FROM journeys_instancestep s JOIN journeys_journeyinstance i ON i.id = s.instance_id
              WHERE i.journey_id = %s AND s.outcome = 'sent')
            SELECT (SELECT count(*) FROM (SELECT 1 FROM sent GROUP BY oneid, kind, day HAVING count(*) > 1) k)
                 + (SELECT count(*) FROM (SELECT 1 FROM sent GROUP BY oneid, day HAVING count(*) > 1) g)
            """,
            [journey.pk],
        )
        out["cap_violations"] = cursor.fetchone()[0]
        # per delivery too (a delivery without a step would escape the count above)
        cursor.execute(
            """
            SELECT count(*) FROM (
              SELECT d.oneid FROM activation_delivery d JOIN activation_send s ON s.id = d.send_id
              GROUP BY d.oneid, s.kind, (s.created AT TIME ZONE 'Asia/Shanghai')::date HAVING count(*) > 1) x
            """
        )
        out["cap_violations_deliveries"] = cursor.fetchone()[0]
        cursor.execute(
            """
            SELECT count(*) FROM journeys_instancestep s JOIN journeys_journeyinstance i ON i.id = s.instance_id
            WHERE i.journey_id = %s AND s.outcome = 'sent'
              AND ((s.at AT TIME ZONE 'Asia/Shanghai')::time >= '21:00'
                   OR (s.at AT TIME ZONE 'Asia/Shanghai')::time < '09:00')
            """,
            [journey.pk],
        )
        out["quiet_hour_violations"] = cursor.fetchone()[0]
        # duplicated: deliveries of one person at one send node beyond the first (each send
        # node of the journey has its own channel kind: the kind stands for the node)
        cursor.execute(
            """
            SELECT coalesce(sum(n - 1), 0) FROM (
              SELECT d.oneid, s.kind, count(*) AS n
              FROM activation_delivery d JOIN activation_send s ON s.id = d.send_id
              GROUP BY 1, 2 HAVING count(*) > 1) x
            """
        )
        out["duplicated_sends"] = int(cursor.fetchone()[0])
        cursor.execute(
            'SELECT "group", count(*) FROM journeys_journeyinstance WHERE journey_id = %s '
            "AND \"group\" <> '' GROUP BY 1",
            [journey.pk],
        )
        groups = dict(cursor.fetchall())
        cursor.execute(
            "SELECT state, count(*) FROM journeys_journeyinstance WHERE journey_id = %s GROUP BY 1",
            [journey.pk],
        )
        out["states"] = dict(cursor.fetchall())
        cursor.execute(
            "SELECT s.kind, count(*) FROM activation_delivery d "
            "JOIN activation_send s ON s.id = d.send_id GROUP BY 1"
        )
        out["deliveries"] = dict(cursor.fetchall())
        cursor.execute(
            "SELECT outcome, count(*) FROM journeys_instancestep s JOIN journeys_journeyinstance i "
            "ON i.id = s.instance_id WHERE i.journey_id = %s GROUP BY 1",
            [journey.pk],
        )
        out["steps"] = dict(cursor.fetchall())
    split = groups.get("holdout", 0) + groups.get("treatment", 0)
    out["holdout"] = groups
    out["holdout_share_error"] = (
        round(abs(groups.get("holdout", 0) / split - HOLDOUT_PERCENT / 100), 6) if split else None
    )
    return out


def open_counts(now: dt.datetime) -> tuple[int, int]:
    """(due and free, due but leased) instances at ``now``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE lease_until IS NULL OR lease_until < %s), "
            "count(*) FILTER (WHERE lease_until >= %s) FROM journeys_journeyinstance "
            "WHERE state IN ('active', 'waiting') AND next_run_at <= %s",
            [now, now, now],
        )
        return cursor.fetchone()


def read_ticks(workdir: Path) -> list[dict]:
    out = []
    for path in workdir.glob("worker*.jsonl"):
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # the last line of a killed worker
    return out


# the run -----------------------------------------------------------------------------------
def run(args) -> dict:
    load_at_start = harness.load_average()
    from pytest_httpserver import HTTPServer

    servers = {"aliyun": HTTPServer(host="127.0.0.1", port=0), "hook": HTTPServer(host="127.0.0.1", port=0)}
    for server in servers.values():
        server.start()
    from cryptography.fernet import Fernet

    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tagportal.settings_test",
        "DATABASE_URL": database_url(args.postgres_db),
        "TAGPORTAL_JOURNEY_LEASE_SECONDS": str(LEASE_SECONDS),
        "TAGPORTAL_VAULT_KEYS": Fernet.generate_key().decode(),
        "TAGPORTAL_CONSENT_DEFAULT": "opt_out",
        "TAGPORTAL_ALIYUN_SMS_ENDPOINT": servers["aliyun"].url_for("/").rstrip("/"),
    }
    os.environ.update(env)
    os.environ["DATABASE_URL"] = postgres_server()
    harness.setup_django()
    from tests.activation.fakes import FakeReceiver
    from tests.activation.fakes_channels import FakeAliyunSms

    FakeAliyunSms(servers["aliyun"]), FakeReceiver(servers["hook"])
    workdir = Path(tempfile.mkdtemp(prefix="bench-journeys-"))
    clock = workdir / "clock"
    results: dict = {"people": args.people, "workers": args.workers, "limit": args.limit}
    started = time.perf_counter()
    with harness.throwaway_database(args.postgres_db) as connection:
        from tagportal.journeys import services
        from tests.journeys.helpers import live

        harness.log(f"database {args.postgres_db} ready in {time.perf_counter() - started:.1f} s", args.quiet)
        made = time.perf_counter()
        _brand, journey, oneids = make_world(args.people, servers)
        results["world_s"] = round(time.perf_counter() - made, 2)
        harness.log(f"{args.people} people ready in {results['world_s']} s", args.quiet)
        entered_at = time.perf_counter()
        results["instances"] = services.enter(live(journey), oneids, now=T0)
        results["enter_per_s"] = round(results["instances"] / (time.perf_counter() - entered_at))
        harness.durable(connection)
        harness.log(f"{results['instances']} entered ({results['enter_per_s']}/s)", args.quiet)
        del oneids
        workers = [Worker(n, env, workdir, args) for n in range(args.workers)]
        for worker in workers:
            worker.start()
        per_stage, kills = {}, []
        ticking = 0.0
        for name, moment in stages():
            now = moment
            clock.write_text(now.isoformat())
            begun = time.perf_counter()
            total, _ = open_counts(now)
            last_progress, last_left = begun, None
            killed = name != "send_sms" or args.kill_at is None
            while True:
                time.sleep(0.5 if killed else 0.05)
                free, leased = open_counts(now)
                left = free + leased
                if left == 0:
                    break
                if left != last_left:
                    last_progress, last_left = time.perf_counter(), left
                if not killed and total and (total - left) / total >= args.kill_at:
                    victim = workers[0]
                    victim.kill()
                    kills.append({"stage": name, "done": total - left, "of": total})
                    harness.log(f"worker 0 killed (SIGKILL) at {total - left}/{total}; restarted", args.quiet)
                    victim.start()
                    killed = True
                if free == 0 and leased and time.perf_counter() - last_progress > 3:
                    # only the killed worker's rows are left: move the clock past their lease
                    now = now + dt.timedelta(seconds=LEASE_SECONDS + 1)
                    clock.write_text(now.isoformat())
                    last_progress = time.perf_counter()
                if time.perf_counter() - started > args.timeout:
                    raise SystemExit(f"timed out in stage {name}")
            seconds = time.perf_counter() - begun
            ticking += seconds
            per_stage[name] = {"people": total, "s": round(seconds, 2), "per_s": round(total / seconds)}
            harness.log(f"stage {name}: {total} people in {seconds:.1f} s", args.quiet)
        (workdir / "stop").write_text("")
        for worker in workers:
            worker.stop()
        ticks = read_ticks(workdir)
        results["stages"] = per_stage
        results["kills"] = kills
        results["advanced"] = sum(t["n"] for t in ticks)
        results["advanced_per_s"] = round(results["advanced"] / ticking) if ticking else None
        times = harness.percentiles_ms([t["s"] for t in ticks], digits=1) if ticks else {}
        results["tick_p50_ms"] = times.get("p50_ms")
        results["tick_p99_ms"] = times.get("p99_ms")
        results["ticks"] = times.get("samples", 0)
        results.update(checks(journey))
        results["peak_rss_mb"] = round(max([harness.peak_rss_mb()] + [t["rss"] for t in ticks]), 1)
        results["peak_rss_mb_driver"] = round(harness.peak_rss_mb(), 1)
        results["machine"] = harness.machine(connection, load_at_start)
    for server in servers.values():
        server.stop()
    results["total_s"] = round(time.perf_counter() - started, 1)
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=5000, help="instances claimed per tick")
    parser.add_argument("--kill-at", type=float, default=0.3, help="share of the SMS stage done at the kill")
    parser.add_argument("--no-kill", dest="kill_at", action="store_const", const=None)
    parser.add_argument("--timeout", type=float, default=3 * 3600)
    parser.add_argument("--postgres-db", default=POSTGRES_DB)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clock", help=argparse.SUPPRESS)
    parser.add_argument("--stop", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    harness.add_output_argument(parser, "journeys")
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(args)
        return {}
    results = run(args)
    harness.write(results, args.output)
    if not args.quiet:
        print(json.dumps({k: v for k, v in results.items() if k != "machine"}, ensure_ascii=False, indent=1))
    return results


if __name__ == "__main__":
    main()
