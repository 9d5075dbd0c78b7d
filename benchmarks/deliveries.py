"""Benchmark: the delivery pipeline under load, with its worker killed mid-run.

At least 100,000 deliveries over every channel kind that sends messages — WeCom
``add_msg_template``, the WeCom group robot, 公众号 template messages, 小程序 subscribe
messages (each person granted one subscription first, in our database through
:func:`~tagportal.activation.services.grant_subscription` and at the fake), Aliyun SMS,
Tencent SMS (the numbers in the contact vault) and signed webhooks — go to the local
fake platforms of the test suite (``tests/activation/fakes*.py``, each on a
single-threaded pytest-httpserver of its own, so a fake's handlers never run at once)
through a real Celery worker process (prefork, ``--concurrency``) on Redis, on a fresh
PostgreSQL database created, migrated and dropped here.

The deliveries are created in waves (one send per kind per wave, a new wave once the
backlog is below a threshold) so that the time from ``created`` to ``sent_at`` measures
the pipeline rather than one initial backlog; the robot's sends (one delivery each, its
own text, spread over many robot keys) all come in the first wave. The driver keeps a
few ``deliver_due`` tasks queued while the worker runs, and kills the worker's whole
process group with SIGKILL ``--kills`` times, at random moments while deliveries are
``sending``, restarting it each time; the short lease (``--lease``) brings the killed
worker's rows back.

What the platforms received is counted at the fakes, never read from our database:

- ``duplicated``: deliveries whose message reached the person (or group, or receiver)
  more than once — keyed by our idempotency key where the channel carries one
  (``client_msg_id``, ``OutId``, ``SessionContext``, ``Idempotency-Key``), else by the
  recipient and content. A repeated call the platform answered from its own
  idempotency record is not a duplicate: it is counted as ``repeated_calls``.
- ``lost``: deliveries no platform received that the pipeline did not report as
  failed or dead (still queued or sending at the end, or marked sent).
- ``misreported``: deliveries the platform did receive but the pipeline marked failed
  or dead.
- ``rate_limit_violations``: calls the fakes refused for being beyond the platform's
  limit (the group robot's 20 messages a minute per key, the real limit on both sides).
- ``feedback_events``: the ``message_*`` events written on the people's profiles (each
  person is a customer of the brand, so every sent delivery writes one, see
  :mod:`tagportal.activation.feedback`), per type, as the pipeline wrote them;
  ``feedback_caught_up``: those a killed worker left unwritten, written afterwards by the
  periodic catch-up.

Writes ``benchmarks/results/deliveries.json`` (``--quick``: 3,000 deliveries, written to
``deliveries-quick.json``) and prints a table. Needs PostgreSQL (``BENCH_POSTGRES_URL``,
else the local server) and Redis (``--redis``; the two databases of ``--redis-dbs`` are
emptied).

    python benchmarks/deliveries.py [--quick] [--deliveries 100000] [--kills 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from benchmarks import harness  # noqa: E402  (after the path is set)

POSTGRES_DB = "tagportal_bench_deliveries"
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def postgres_server() -> str:
    """The server's maintenance database: ``BENCH_POSTGRES_URL``, else :data:`POSTGRES_SERVER`."""
    return os.environ.get("BENCH_POSTGRES_URL") or POSTGRES_SERVER


#: The Redis server and two of its databases the run empties and uses: the broker's, and
#: the cache's (tokens, rate-limit windows shared by the worker processes).
REDIS = "redis://127.0.0.1:6379"
BROKER_DB, CACHE_DB = 11, 12
CELERY = Path(sys.executable).parent / "celery"

#: The kinds that send messages, in the order of the results.
KINDS = ("wecom", "wecom_robot", "wechat_mp", "miniprogram", "sms_aliyun", "sms_tencent", "webhook")
PEOPLE_KINDS = tuple(k for k in KINDS if k != "wecom_robot")
TERMINAL = ("sent", "failed", "dead")
TEMPLATE = "tmpl-bench"


# the fakes ---------------------------------------------------------------------------
def start_servers() -> dict:
    """One single-threaded HTTP server per platform base (the Aliyun and Tencent fakes
    both answer ``POST /``), started before Django reads the settings."""
    from pytest_httpserver import HTTPServer

    servers = {
        name: HTTPServer(host="127.0.0.1", port=0)
        for name in ("wecom", "wechat", "aliyun", "tencent", "hook")
    }
    for server in servers.values():
        server.start()
    return servers


def base(server) -> str:
    return server.url_for("/").rstrip("/")


def make_fakes(servers: dict, robot_keys: list[str]) -> dict:
    from tests.activation.fakes import FakeReceiver, FakeRobot, FakeWeChat, FakeWeCom
    from tests.activation.fakes_channels import FakeAliyunSms, FakeTencentSms

    class Robot(FakeRobot):
        """The robot fake, also keeping what each accepted message said."""

        def __init__(self, *args, **kwargs):
            self.accepted: Counter = Counter()
            super().__init__(*args, **kwargs)

        def send(self, request):
            import json

            response = super().send(request)
            if json.loads(response.get_data()).get("errcode") == 0:
                body = json.loads(request.get_data())
                self.accepted[(request.args.get("key", ""), body.get("text", {}).get("content"))] += 1
            return response

    class Receiver(FakeReceiver):
        """The webhook receiver, acting once per idempotency key as the webhook contract
        asks of the brand's system: a repeated key is a repeated call (answered 2xx, not
        acted on again), not a second delivery."""

        def __init__(self, *args, **kwargs):
            self.accepted: Counter = Counter()
            self.repeated = 0
            super().__init__(*args, **kwargs)

        def handle(self, request):
            response = super().handle(request)
            if 200 <= response.status_code < 300:
                key = request.headers.get("Idempotency-Key", "")
                if key in self.accepted:
                    self.repeated += 1
                else:
                    self.accepted[key] += 1
            return response

    return {
        "wecom": FakeWeCom(servers["wecom"]),
        "wecom_robot": Robot(servers["wecom"], keys=robot_keys, per_window=20, window=60.0),
        "wechat": FakeWeChat(servers["wechat"]),
        "sms_aliyun": FakeAliyunSms(servers["aliyun"]),
        "sms_tencent": FakeTencentSms(servers["tencent"]),
        "webhook": Receiver(servers["hook"]),
    }


# environment ---------------------------------------------------------------------------
def environment(servers: dict, args, secret_key: str, vault_key: str) -> dict:
    """The settings of the driver and the worker alike (read from the environment)."""
    return {
        "DJANGO_SETTINGS_MODULE": "tagportal.settings",
        "DEBUG": "false",
        "SECRET_KEY": secret_key,
        "DATABASE_URL": postgres_server().rsplit("/", 1)[0] + "/" + args.postgres_db,
        "DATABASE_CONN_MAX_AGE": "600",
        "CELERY_BROKER_URL": f"{args.redis}/{args.redis_dbs[0]}",
        "CACHE_URL": f"{args.redis}/{args.redis_dbs[1]}",
        "TAGPORTAL_RATE_LIMIT_STORAGE": f"{args.redis}/{args.redis_dbs[1]}",
        "TAGPORTAL_WECOM_ROBOT_RATE": "20/minute",
        # each kind's own per-account rate, raised from the conservative defaults so that one
        # account per kind can carry the run; still enforced before every call
        "TAGPORTAL_CHANNEL_RATES": json.dumps({kind: args.rate for kind in PEOPLE_KINDS}),
        "TAGPORTAL_VAULT_KEYS": vault_key,
        "TAGPORTAL_CONSENT_DEFAULT": "opt_out",
        "TAGPORTAL_DELIVERY_LEASE_SECONDS": str(args.lease),
        "TAGPORTAL_DELIVERY_BATCH": str(args.batch),
        "TAGPORTAL_DELIVERY_TASK_SECONDS": "10",
        "TAGPORTAL_DELIVERY_BACKOFF_SECONDS": "1",
        "TAGPORTAL_DELIVERY_BACKOFF_MAX_SECONDS": "10",
        "TAGPORTAL_CHANNEL_RETRY_INITIAL_SECONDS": "0.1",
        "TAGPORTAL_CHANNEL_RETRY_MAX_SECONDS": "2",
        "TAGPORTAL_CHANNEL_TIMEOUT_SECONDS": "10",
        "TAGPORTAL_WECOM_API_BASE": base(servers["wecom"]),
        "TAGPORTAL_WECHAT_API_BASE": base(servers["wechat"]),
        "TAGPORTAL_ALIYUN_SMS_ENDPOINT": base(servers["aliyun"]),
        "TAGPORTAL_TENCENT_SMS_ENDPOINT": base(servers["tencent"]),
    }


def flush_redis(args) -> None:
    import redis

    for db in args.redis_dbs:
        redis.Redis.from_url(f"{args.redis}/{db}").flushdb()


# the data ------------------------------------------------------------------------------
def phone_of(oneid: int) -> str:
    return f"13{oneid:09d}"


def recipient_of(kind: str, oneid: int) -> str:
    return {
        "wecom": f"wm-ext-{oneid}",
        "wechat_mp": f"o-mp-{oneid}",
        "miniprogram": f"o-mini-{oneid}",
        "webhook": f"crm-{oneid}",
    }.get(kind, "")


def plan(total: int, robot_keys: int, robot_per_key: int) -> dict[str, int]:
    """Deliveries per kind: the robot's few, the rest shared by the other kinds."""
    robot = robot_keys * robot_per_key
    rest = max(0, total - robot)
    each, extra = divmod(rest, len(PEOPLE_KINDS))
    counts = {k: each + (1 if i < extra else 0) for i, k in enumerate(PEOPLE_KINDS)}
    counts["wecom_robot"] = robot
    return counts


def make_accounts(brand, servers: dict, robot_keys: list[str]) -> dict:
    from tagportal.activation.models import ChannelAccount

    specs = {
        "wecom": ({"corpid": "ww-corp", "agentid": 1000002}, {"corpsecret": "corp-secret"}),
        "wechat_mp": ({"appid": "wx-app"}, {"appsecret": "app-secret", "callback_token": "cb-token"}),
        "miniprogram": ({"appid": "wx-app"}, {"appsecret": "app-secret"}),
        "webhook": (
            {"url": base(servers["hook"]) + "/hooks/tagportal"},
            {"signing_secret": "signing-secret"},
        ),
        "sms_aliyun": (
            {"sign_name": "TagPortal", "region": "cn-hangzhou"},
            {"access_key_id": "LTAI-test", "access_key_secret": "aliyun-secret"},
        ),
        "sms_tencent": (
            {"sms_sdk_app_id": "1400000001", "sign_name": "TagPortal"},
            {"secret_id": "AKID-test", "secret_key": "tencent-key"},
        ),
    }

    def make(kind, name, settings_, secrets):
        obj = ChannelAccount(brand=brand, kind=kind, name=name, settings=settings_)
        obj.merge_secrets(secrets)
        obj.full_clean()
        obj.save()
        return obj

    accounts = {kind: make(kind, f"bench {kind}", *spec) for kind, spec in specs.items()}
    accounts["wecom_robot"] = [
        make("wecom_robot", f"bench robot {i}", {}, {"key": key}) for i, key in enumerate(robot_keys)
    ]
    return accounts


def prepare_people(brand, accounts: dict, fakes: dict, counts: dict) -> dict[str, list[int]]:
    """OneIDs per kind (disjoint), with what each platform and our tables need: WeCom
    relationships and WeChat followers at the fakes, one subscription each for the
    小程序 (our table through ``grant_subscription`` and the fake), the SMS numbers in
    the vault."""
    from tagportal.activation import services
    from tagportal.activation.models import ContactEntry, ContactKind, Subscription
    from tagportal.core import secrets
    from tagportal.profiles import pii
    from tagportal.profiles.choices import IdentityType
    from tagportal.profiles.models import Customer

    people = {
        kind: [(i + 1) * 1_000_000 + n for n in range(1, counts[kind] + 1)]
        for i, kind in enumerate(PEOPLE_KINDS)
    }
    fakes["wecom"].relationships.update(("bench-sender", recipient_of("wecom", o)) for o in people["wecom"])
    fakes["wechat"].openids.update(recipient_of("wechat_mp", o) for o in people["wechat_mp"])
    fakes["wechat"].openids.update(recipient_of("miniprogram", o) for o in people["miniprogram"])
    # one grant each: the first few through grant_subscription, the rest as the same rows in bulk
    grants = []
    for n, oneid in enumerate(people["miniprogram"]):
        openid = recipient_of("miniprogram", oneid)
        if n < 200:
            services.grant_subscription(accounts["miniprogram"], openid, TEMPLATE)
        else:
            grants.append(
                Subscription(
                    account=accounts["miniprogram"], openid=openid, template_id=TEMPLATE, remaining=1
                )
            )
        fakes["wechat"].subscriptions[(openid, TEMPLATE)] += 1
    Subscription.objects.bulk_create(grants, batch_size=2000)
    fernet = secrets.multi_fernet(secrets.configured_keys("TAGPORTAL_VAULT_KEYS"), "TAGPORTAL_VAULT_KEYS")
    rows = []
    for kind in ("sms_aliyun", "sms_tencent"):
        for oneid in people[kind]:
            number = "+86" + phone_of(oneid)
            rows.append(
                ContactEntry(
                    brand=brand,
                    oneid=oneid,
                    kind=ContactKind.PHONE,
                    value_hash=pii.hash_value(IdentityType.PHONE, number),
                    ciphertext=fernet.encrypt(number.encode()).decode(),
                    masked=pii.mask(IdentityType.PHONE, number),
                )
            )
    ContactEntry.objects.bulk_create(rows, batch_size=2000)
    # everyone a customer of the brand: each sent delivery writes its feedback event on them
    Customer.objects.bulk_create(
        (Customer(brand=brand, oneid=oneid) for oneids in people.values() for oneid in oneids),
        batch_size=2000,
    )
    return people


def content_of(kind: str, wave: int) -> dict:
    data = {"thing1": {"value": f"wave {wave}"}}
    return {
        "wecom": {"sender": "bench-sender", "text": f"wave {wave}: 您的护理提醒"},
        "wechat_mp": {"template_id": TEMPLATE, "data": data},
        "miniprogram": {"template_id": TEMPLATE, "data": data},
        "sms_aliyun": {"template_code": "SMS_100", "params": {"code": str(wave)}},
        "sms_tencent": {"template_id": "100", "params": [str(wave)]},
        "webhook": {"event": "bench", "wave": wave},
    }[kind]


def recipients_for(kind: str, oneids: list[int]):
    if kind in ("sms_aliyun", "sms_tencent"):
        from tagportal.activation import vault

        return [(o, vault.phone_hash("+86" + phone_of(o))) for o in oneids]
    return [(o, recipient_of(kind, o)) for o in oneids]


def create_wave(wave: int, accounts: dict, people: dict, waves: int, robot_texts: list | None) -> int:
    """One send per kind with its share of this wave's people (the robot's sends, one
    delivery each, in the first wave)."""
    from tagportal.activation.deliveries import create_send

    made = 0
    for kind in PEOPLE_KINDS:
        everyone = people[kind]
        size = -(-len(everyone) // waves)
        chunk = everyone[wave * size : (wave + 1) * size]
        if chunk:
            create_send(accounts[kind], content_of(kind, wave), recipients_for(kind, chunk), kick=False)
            made += len(chunk)
    for account, text in robot_texts or ():
        create_send(account, {"msgtype": "text", "content": text}, [(0, "group")], kick=False)
        made += 1
    return made


# the worker ----------------------------------------------------------------------------
class Worker:
    """A Celery worker process (its own process group, so SIGKILL reaches every child)."""

    def __init__(self, env: dict, concurrency: int, logdir: Path):
        self.env, self.concurrency, self.logdir = env, concurrency, logdir
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.logdir / f"worker-{self.starts}.log", "wb")
        self.process = subprocess.Popen(
            [
                str(CELERY),
                "-A",
                "tagportal",
                "worker",
                "-Q",
                "default",
                "-c",
                str(self.concurrency),
                "--pool",
                "prefork",
                "--prefetch-multiplier",
                "1",
                "-l",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"bench-{self.starts}@%h",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL to the worker and its pool processes (the group this script started)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def queued_tasks(args) -> int:
    import redis

    return redis.Redis.from_url(f"{args.redis}/{args.redis_dbs[0]}").llen("default")


# figures --------------------------------------------------------------------------------
def received_counts(fakes: dict) -> dict:
    """What each platform delivered, by the key a delivery is recognised by, and the
    calls it answered from its own idempotency record instead of sending again."""
    wechat = fakes["wechat"]
    wecom = Counter()
    for message in fakes["wecom"].messages.values():
        for ext in message["ids"]:
            if ext not in message["fail"]:
                wecom[(message["sender"], ext)] += 1
    mp = Counter((b["touser"], b.get("client_msg_id")) for b in wechat.sent)
    mini = Counter((b["touser"], b["template_id"]) for b in wechat.subscribe_sent)
    aliyun = Counter((s["out_id"], n) for s in fakes["sms_aliyun"].sends for n in s["numbers"])
    tencent = Counter((s["context"], n) for s in fakes["sms_tencent"].sends for n in s["numbers"])
    return {
        "wecom": wecom,
        "wecom_robot": fakes["wecom_robot"].accepted,
        "wechat_mp": mp,
        "miniprogram": mini,
        "sms_aliyun": aliyun,
        "sms_tencent": tencent,
        "webhook": fakes["webhook"].accepted,
    }


def platform_calls(fakes: dict) -> dict:
    return {
        "wecom": fakes["wecom"].calls["add_msg_template"],
        "wecom_robot": sum(fakes["wecom_robot"].accepted.values()) + fakes["wecom_robot"].refused,
        "wechat_mp": fakes["wechat"].calls["template_send"],
        "miniprogram": fakes["wechat"].calls["subscribe_send"],
        "sms_aliyun": fakes["sms_aliyun"].calls["SendSms"],
        "sms_tencent": fakes["sms_tencent"].calls["SendSms"],
        "webhook": fakes["webhook"].calls,
    }


def key_of(kind: str, row: dict):
    oneid, key = row["oneid"], row["idempotency_key"]
    if kind == "wecom":
        return ("bench-sender", row["recipient"])
    if kind == "wecom_robot":
        return (row["robot_key"], row["content"])
    if kind == "wechat_mp":
        return (row["recipient"], key)
    if kind == "miniprogram":
        return (row["recipient"], TEMPLATE)
    if kind == "sms_aliyun":
        return (key, phone_of(oneid))
    if kind == "sms_tencent":
        return (key, "+86" + phone_of(oneid))
    return key


def figures(rows: list[dict], received: dict, finished: bool = True) -> dict:
    """Per kind and in all: deliveries, states, received once / more than once / never,
    lost, misreported, in doubt, and the queue-to-sent times."""
    per_kind: dict[str, dict] = {}
    latencies: dict[str, list[float]] = {k: [] for k in KINDS}
    for kind in KINDS:
        per_kind[kind] = {
            "deliveries": 0,
            "states": Counter(),
            "error_codes": Counter(),
            "received": 0,
            "duplicated": 0,
            "duplicate_messages": 0,
            "lost": 0,
            "misreported": 0,
            "in_doubt": 0,
            "unfinished": 0,
        }
    for row in rows:
        kind = row["kind"]
        out = per_kind[kind]
        out["deliveries"] += 1
        out["states"][row["state"]] += 1
        if row["state"] in ("failed", "dead"):
            out["error_codes"][row["last_error_code"]] += 1
        times = received[kind].get(key_of(kind, row), 0)
        if times:
            out["received"] += 1
        if times > 1:
            out["duplicated"] += 1
            out["duplicate_messages"] += times - 1
        if row["state"] not in TERMINAL:
            out["unfinished"] += 1
        if times == 0 and (row["state"] == "sent" or (finished and row["state"] not in TERMINAL)):
            out["lost"] += 1
        if times and row["state"] in ("failed", "dead"):
            out["misreported"] += 1
        if row["state"] == "failed" and row["last_error_code"] == "in_doubt":
            out["in_doubt"] += 1
        if row["state"] == "sent" and row["sent_at"]:
            latencies[kind].append((row["sent_at"] - row["created"]).total_seconds())
    all_latencies = [x for values in latencies.values() for x in values]
    for kind, out in per_kind.items():
        out["states"] = dict(out["states"])
        out["error_codes"] = dict(out["error_codes"])
        out["queue_to_sent"] = harness.percentiles_ms(latencies[kind], 1) if latencies[kind] else None
    totals = {
        name: sum(per_kind[k][name] for k in KINDS)
        for name in (
            "deliveries",
            "received",
            "duplicated",
            "duplicate_messages",
            "lost",
            "misreported",
            "in_doubt",
            "unfinished",
        )
    }
    return {
        "per_kind": per_kind,
        "totals": totals,
        "queue_to_sent": harness.percentiles_ms(all_latencies, 1) if all_latencies else None,
    }


def feedback_counts() -> dict[str, int]:
    """The feedback events written on the people's profiles, per type."""
    from django.db.models import Count

    from tagportal.profiles.models import Event

    return dict(Event.objects.order_by().values_list("type").annotate(n=Count("pk")))


def catch_up_feedback() -> int:
    """The feedback events the killed workers left unwritten, written as the periodic task
    does (:func:`tagportal.activation.feedback.catch_up`)."""
    import datetime as dt

    from django.utils import timezone

    from tagportal.activation import feedback

    return feedback.catch_up(timezone.now() - dt.timedelta(days=1))


def read_rows() -> list[dict]:
    from tagportal.activation.models import Delivery

    rows = list(
        Delivery.objects.values(
            "oneid",
            "recipient",
            "idempotency_key",
            "state",
            "last_error_code",
            "created",
            "sent_at",
            "attempts",
            "send__kind",
            "send__content",
            "send__account",
        )
    )
    return rows


# the run ----------------------------------------------------------------------------------
def run(args) -> dict:
    rng = random.Random(args.seed)
    load_at_start = harness.load_average()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    servers = start_servers()
    from cryptography.fernet import Fernet

    secret_key = "bench-" + Fernet.generate_key().decode() + Fernet.generate_key().decode()
    env = {**os.environ, **environment(servers, args, secret_key, Fernet.generate_key().decode())}
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    os.environ.update(env)
    os.environ["DATABASE_URL"] = postgres_server()  # the driver connects to the server's own database first
    flush_redis(args)
    harness.setup_django()
    robot_keys = [f"bench-robot-{i}" for i in range(args.robot_keys)]
    fakes = make_fakes(servers, robot_keys)
    counts = plan(args.deliveries, args.robot_keys, args.robot_per_key)
    worker = Worker(env, args.concurrency, Path(tempfile.mkdtemp(prefix="bench-deliveries-")))
    started = time.perf_counter()
    with harness.throwaway_database(args.postgres_db) as connection:
        from django.db import connection as conn

        from tagportal.catalog.models import Brand, BusinessLine
        from tagportal.celery import app

        setup_s = time.perf_counter() - started
        harness.log(f"database {args.postgres_db} migrated in {setup_s:.1f} s", args.quiet)
        line = BusinessLine.objects.create(code="yimei", name="医美")
        brand = Brand.objects.create(code="ruiyan", name="瑞颜", business_line=line)
        accounts = make_accounts(brand, servers, robot_keys)
        prepared = time.perf_counter()
        people = prepare_people(brand, accounts, fakes, counts)
        harness.durable(connection)
        prepare_s = time.perf_counter() - prepared
        harness.log(
            f"{sum(counts.values())} deliveries planned {counts}; people ready in {prepare_s:.1f} s",
            args.quiet,
        )

        robot_texts = [
            (accounts["wecom_robot"][i % args.robot_keys], f"门店群通知 #{i}")
            for i in range(args.robot_keys * args.robot_per_key)
        ]
        total = sum(counts.values())
        # each kill once this share of the deliveries is done or of the time is gone
        kill_at = sorted(rng.uniform(0.05, 0.5) for _ in range(args.kills))
        kills: list[dict] = []
        created = create_wave(0, accounts, people, args.waves, robot_texts)
        next_wave = 1
        worker.start()
        begun = time.perf_counter()
        deadline = begun + args.timeout
        last_log = 0.0
        states: dict = {}
        finished = False
        while time.perf_counter() < deadline:
            states = _states()
            done = sum(states.get(s, 0) for s in TERMINAL)
            backlog = states.get("queued", 0) + states.get("sending", 0)
            if next_wave < args.waves and backlog < args.backlog:  # a wave at a time: tasks keep flowing
                created += create_wave(next_wave, accounts, people, args.waves, None)
                next_wave += 1
            if next_wave >= args.waves and done >= created:
                finished = True
                break
            share = max(done / total, (time.perf_counter() - begun) / args.timeout)
            if kill_at and share >= kill_at[0] and states.get("sending", 0) > 0:
                kill_at.pop(0)
                in_flight = states.get("sending", 0)
                time.sleep(rng.uniform(0, 0.5))  # a random moment within the batch
                worker.kill()
                kills.append(
                    {"after_s": round(time.perf_counter() - begun, 1), "done": done, "sending": in_flight}
                )
                harness.log(
                    f"worker killed (SIGKILL) at {done} done, {in_flight} sending; restarted", args.quiet
                )
                worker.start()
            while queued_tasks(args) < 2:
                app.send_task("tagportal.activation.tasks.deliver_due", queue="default")
            for server in servers.values():
                server.clear_log()
            now = time.perf_counter()
            if now - last_log > 10:
                last_log = now
                harness.log(f"{now - begun:6.0f} s: {done}/{created} terminal, states {states}", args.quiet)
            time.sleep(1.0)
        elapsed = time.perf_counter() - begun
        worker.stop()
        harness.log(f"finished in {elapsed:.1f} s: {states}", args.quiet)
        conn.close()
        rows = read_rows()
        feedback_events = feedback_counts()
        feedback_caught_up = catch_up_feedback()
        robot_account_key = {a.pk: a.secret("key") for a in accounts["wecom_robot"]}
        for row in rows:
            row["kind"] = row.pop("send__kind")
            content = row.pop("send__content") or {}
            row["robot_key"] = robot_account_key.get(row.pop("send__account"), "")
            row["content"] = content.get("content") if row["kind"] == "wecom_robot" else None
        machine = harness.machine(connection, load_at_start)
    for server in servers.values():
        server.stop()
    received = received_counts(fakes)
    calls = platform_calls(fakes)
    out = figures(rows, received, finished)
    for kind in KINDS:
        sent_messages = sum(received[kind].values())
        out["per_kind"][kind]["platform_calls"] = calls[kind]
        out["per_kind"][kind]["platform_messages"] = sent_messages
    sent = sum(out["per_kind"][k]["states"].get("sent", 0) for k in KINDS)
    results = {
        "benchmark": "deliveries",
        "deliveries": out["totals"]["deliveries"],
        "channels": [k for k in KINDS if out["per_kind"][k]["deliveries"]],
        "worker_kills": len(kills),
        "lost": out["totals"]["lost"],
        "duplicated": out["totals"]["duplicated"],
        "duplicate_messages": out["totals"]["duplicate_messages"],
        "misreported": out["totals"]["misreported"],
        "in_doubt": out["totals"]["in_doubt"],
        "finished": finished,
        "unfinished": out["totals"]["unfinished"],
        "rate_limit_violations": fakes["wecom_robot"].refused,
        "sent": sent,
        "feedback_events": feedback_events,
        "feedback_caught_up": feedback_caught_up,
        "elapsed_s": round(elapsed, 1),
        "per_second": round(sum(states.get(s, 0) for s in TERMINAL) / elapsed, 1),
        "p99_queue_to_sent_ms": out["queue_to_sent"]["p99_ms"] if out["queue_to_sent"] else None,
        "p50_queue_to_sent_ms": out["queue_to_sent"]["p50_ms"] if out["queue_to_sent"] else None,
        "per_kind": out["per_kind"],
        "kills": kills,
        "worker_starts": worker.starts,
        "setup_s": {"database": round(setup_s, 1), "people": round(prepare_s, 1)},
        "settings": {
            "concurrency": args.concurrency,
            "lease_seconds": args.lease,
            "batch": args.batch,
            "account_rate": args.rate,
            "waves": args.waves,
            "backlog": args.backlog,
            "robot_keys": args.robot_keys,
            "robot_per_key": args.robot_per_key,
            "robot_rate": "20/minute per key (the platform's limit, on both sides)",
            "delivery_backoff_seconds": 1,
            "channel_retry_initial_seconds": 0.1,
            "seed": args.seed,
            "quick": args.quick,
        },
        "method": {
            "fakes": "tests/activation/fakes.py and fakes_channels.py, each platform on its own "
            "single-threaded pytest-httpserver; the robot and webhook fakes subclassed here to keep "
            "what they accepted",
            "duplicated": "deliveries the platform delivered more than once, counted at the fakes: by "
            "(sender, external_userid) for WeCom, (robot key, text) for the robot, (openid, client_msg_id) "
            "for 公众号, (openid, template) for 小程序, (OutId, number) / (SessionContext, number) for SMS, "
            "Idempotency-Key for webhooks",
            "lost": "deliveries no platform received that are marked sent, or (in a run that finished) "
            "are still queued or sending; unfinished: not sent, failed or dead when the run stopped",
            "misreported": "deliveries a platform received that are marked failed or dead",
            "rate_limit_violations": "calls the robot fake refused with 45009 (more than 20 in 60 s per key)",
            "per_second": "deliveries reaching sent, failed or dead per second of the delivery phase "
            "(worker start to the last one; kills and restarts included)",
            "queue_to_sent": "Delivery.created to Delivery.sent_at (the start of the successful try), "
            "deliveries created in waves once the backlog is below the threshold",
        },
        "machine": machine,
    }
    return results


def _states() -> dict:
    from django.db.models import Count

    from tagportal.activation.models import Delivery

    return dict(Delivery.objects.values_list("state").annotate(n=Count("pk")).values_list("state", "n"))


def table(results: dict) -> str:
    lines = [
        f"deliveries {results['deliveries']} over {len(results['channels'])} kinds, "
        f"{results['worker_kills']} worker kills, {results['elapsed_s']} s",
        f"  per second            {results['per_second']}",
        f"  queue to sent p50/p99 {results['p50_queue_to_sent_ms']} / {results['p99_queue_to_sent_ms']} ms",
        f"  lost                  {results['lost']}",
        f"  duplicated            {results['duplicated']}",
        f"  misreported           {results['misreported']}",
        f"  in doubt              {results['in_doubt']}",
        f"  rate limit violations {results['rate_limit_violations']}",
        "",
        f"{'kind':<14}{'deliveries':>11}{'sent':>8}{'failed':>8}{'dead':>6}{'dup':>5}{'lost':>6}{'misrep':>8}{'calls':>8}{'p99 ms':>10}",
    ]
    for kind, row in results["per_kind"].items():
        st = row["states"]
        p99 = row["queue_to_sent"]["p99_ms"] if row["queue_to_sent"] else "-"
        lines.append(
            f"{kind:<14}{row['deliveries']:>11}{st.get('sent', 0):>8}{st.get('failed', 0):>8}{st.get('dead', 0):>6}"
            f"{row['duplicated']:>5}{row['lost']:>6}{row['misreported']:>8}{row['platform_calls']:>8}{p99:>10}"
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=100_000)
    parser.add_argument(
        "--quick", action="store_true", help="a small run: 3,000 deliveries, fewer robot keys"
    )
    parser.add_argument(
        "--kills", type=int, default=2, help="SIGKILLs of the worker while deliveries are in flight"
    )
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--lease", type=int, default=10, help="TAGPORTAL_DELIVERY_LEASE_SECONDS")
    parser.add_argument("--batch", type=int, default=50, help="TAGPORTAL_DELIVERY_BATCH")
    parser.add_argument(
        "--rate", default="300/second", help="the per-account rate of each kind (TAGPORTAL_CHANNEL_RATES)"
    )
    parser.add_argument("--waves", type=int, default=20)
    parser.add_argument(
        "--backlog", type=int, default=3000, help="a new wave once fewer are queued or sending"
    )
    parser.add_argument("--robot-keys", type=int, default=12)
    parser.add_argument("--robot-per-key", type=int, default=30)
    parser.add_argument("--timeout", type=float, default=900, help="seconds the delivery phase may take")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres-db", default=POSTGRES_DB, help="created, migrated and dropped by the run")
    parser.add_argument("--redis", default=REDIS, help="the Redis server of the broker and the cache")
    parser.add_argument(
        "--redis-dbs",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[BROKER_DB, CACHE_DB],
        help="the broker's and the cache's databases, emptied by the run (default %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true")
    harness.add_output_argument(parser, "deliveries")
    args = parser.parse_args(argv)
    if args.quick:
        if args.output == str(harness.results_path("deliveries")):
            args.output = str(harness.results_path("deliveries-quick"))
        args.deliveries = min(args.deliveries, 3000)
        args.robot_keys, args.robot_per_key = 4, 25
        args.waves, args.backlog = 4, 500
    results = run(args)
    output = harness.write(results, args.output)
    print(table(results))
    print(f"written to {output}")
    return results


if __name__ == "__main__":
    main()
