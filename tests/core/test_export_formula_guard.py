"""Every download, in every spreadsheet format it offers, writes text a user typed as
text: with formula payloads planted in tag, brand, category and region names,
descriptions, change-request titles, reasons and comments, and identity values, no
CSV cell and no Excel cell of any download can run as a formula.

The downloads are listed once (:data:`DOWNLOADS`); two checks fail when a new one
appears that the list does not cover: one over the URL patterns and admin actions whose
names say "export", "download", "csv" or "template", one over the code that builds a
file or a file response (:data:`PRODUCERS`)."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

import tagportal
from tagportal.audiences import services as audiences
from tagportal.audiences.store import STORE
from tagportal.catalog.models import Brand, Category, Tag
from tagportal.catalog.services import publish_tag
from tagportal.core.days import beijing_today
from tagportal.core.spreadsheets import guard
from tagportal.governance import services as gov
from tagportal.governance.choices import ChangeKind, ReportKind, ReportStatus
from tagportal.governance.reports.service import request_report
from tagportal.governance.services import ItemSpec
from tagportal.profiles.models import Customer, Identity

from ..audiences.conftest import store_result
from ..audiences.test_services import identity
from ..conftest import World, client_for, in_module_transaction, make_world
from ..factories import RegionFactory, TagFactory
from ..formula_guard import xlsx_texts

#: What a user could type: each starts with a character a spreadsheet reads as a formula.
PAYLOADS = (
    '=HYPERLINK("http://x")',
    "+1+1",
    "-2+3",
    "@SUM(1)",
    "\tcmd",
    "\rcmd",
    "=cmd|' /C calc'!A0",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
DEFINITION = {
    "type": "condition",
    "condition": {
        "metric": {"agg": "count", "source": "orders", "window": {"last_days": 30}},
        "op": "gte",
        "value": 2,
    },
}


# ---------------------------------------------------------------------------
# The planted world


def _payload(number: int) -> str:
    return PAYLOADS[number % len(PAYLOADS)]


@pytest.fixture(scope="module")
def planted_references(django_db_setup, django_db_blocker):
    """The planted world, made once for the module (each test runs in a savepoint)."""
    STORE.clear()
    yield from in_module_transaction(django_db_blocker, lambda: plant(make_world()).references())
    STORE.clear()


@pytest.fixture
def planted(planted_references, db):
    return World.read(planted_references)


def plant(w: World) -> World:
    """:func:`make_world` with a payload in every text a download shows: the own brand's and a
    category's and a region's names, tags' names and descriptions (two near twins for
    the merge report), a change request's title, reasons and comment, an audience's
    members' identities; every report run; the tags created in the reports' period."""
    Brand.objects.filter(pk=w.own_brand.pk).update(name=PAYLOADS[3])
    w.own_brand.refresh_from_db()
    category = Category.objects.create(code="risky", name=PAYLOADS[0], name_en=PAYLOADS[6])
    region = RegionFactory(code="risky", name=PAYLOADS[4])
    tags = []
    for number, payload in enumerate(PAYLOADS):
        tag = TagFactory(
            brand=w.own_brand,
            category=w.category,
            code=f"yimei_visit_risky_{number}",
            name=f"{payload}标签",
            value_type="boolean",
            values=[],
            definition=DEFINITION,
        )
        publish_tag(tag)
        tags.append(tag)
    Tag.objects.filter(pk__in=[t.pk for t in tags]).update(description=PAYLOADS[1], category=category)
    for tag in tags:
        tag.regions.set([region])
    # near twins with one definition: a merge suggestion naming both
    Tag.objects.filter(pk=tags[1].pk).update(name=f"{PAYLOADS[0]}标签 ")
    w.risky_tag = Tag.objects.get(pk=tags[0].pk)

    request = gov.propose(
        w.operator,
        [ItemSpec(ChangeKind.UPDATE, w.risky_tag, {"description": PAYLOADS[2]})],
        title=PAYLOADS[6],
        description=PAYLOADS[5],
        submit_now=True,
    )
    gov.comment(w.steward, request, PAYLOADS[3])
    gov.approve(w.steward, request, PAYLOADS[0], apply_now=True)

    ten_days_ago = dt.datetime.combine(beijing_today() - dt.timedelta(days=10), dt.time(12), dt.UTC)
    Tag.objects.update(created=ten_days_ago)
    for kind in ReportKind.values:
        report = request_report(w.admin, kind, run_now=True)
        assert report.status == ReportStatus.SUCCESS, report.error
        assert report.row_count, kind
        setattr(w, f"{kind}_report", report)

    for oneid in range(1, 8):
        Customer.objects.create(brand=w.own_brand, oneid=oneid)
    skin = TagFactory(
        brand=w.own_brand,
        category=w.category,
        code="yimei_visit_skin",
        name="肤质",
        value_type="enum",
        values=[{"code": c, "label": c} for c in ("oily", "dry")],
        definition={"type": "manual"},
        kind="manual",
    )
    publish_tag(skin)
    skin.refresh_from_db()
    store_result(skin, {"oily": list(range(1, 8)), "dry": []})
    w.audience = audiences.create_audience(
        w.operator,
        brand=w.own_brand,
        name=PAYLOADS[0],
        expression={"tag": skin.code, "op": "eq", "value": "oily"},
    )
    for oneid, payload in enumerate(PAYLOADS, start=1):
        identity(w.own_brand, oneid, "wechat_unionid", payload)
    return w


# ---------------------------------------------------------------------------
# The downloads


def _page(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _today() -> dict:
    day = beijing_today().isoformat()
    return {"start": day, "end": day}


def _report_download(kind: str, fmt: str):
    def fetch(w):
        report = getattr(w, f"{kind}_report")
        return _page(w.steward).get(reverse("dashboards:download", args=[report.pk]), {"format": fmt})

    return fetch


def _masked(w) -> list[str]:
    """What a user without the PII permission is shown of the planted identities."""
    masks = Identity.objects.filter(brand=w.own_brand, type="wechat_unionid").values_list("masked", flat=True)
    return [guard(mask) for mask in masks]


@dataclass(frozen=True)
class Download:
    """One download: the URL pattern (or admin action) it is reached by, the format,
    how to fetch it from the planted world, and whether it shows what users typed
    (a template does not)."""

    label: str
    route: str
    fmt: str
    fetch: Callable
    shows_typed_text: bool = True
    #: The texts the file must show, if not the payloads as typed (masked identities).
    expected: Callable | None = None


DOWNLOADS = [
    *(
        Download(f"dashboards {kind} report {fmt}", "dashboards:download", fmt, _report_download(kind, fmt))
        for kind in ReportKind.values
        for fmt in ("csv", "xlsx")
    ),
    *(
        Download(
            f"dictionary API {fmt}",
            "tag-export",
            fmt,
            lambda w, fmt=fmt: client_for(w.steward).get("/api/catalog/tags/export/", {"format": fmt}),
        )
        for fmt in ("csv", "xlsx")
    ),
    *(
        Download(
            f"dictionary admin {fmt}",
            "admin:catalog_tag_export",
            fmt,
            lambda w, fmt=fmt: _page(w.steward).get(reverse("admin:catalog_tag_export"), {"format": fmt}),
        )
        for fmt in ("csv", "xlsx")
    ),
    Download(
        "dictionary admin action",
        "admin-action:catalog.tag.export_selected",
        "xlsx",
        lambda w: _page(w.steward).post(
            reverse("admin:catalog_tag_changelist"),
            {"action": "export_selected", "_selected_action": list(Tag.objects.values_list("pk", flat=True))},
        ),
    ),
    Download(
        "audit API csv",
        "audit-list",
        "csv",
        lambda w: client_for(w.steward).get("/api/governance/audit/", {**_today(), "format": "csv"}),
    ),
    Download(
        "audit page csv",
        "governance:audit_csv",
        "csv",
        lambda w: _page(w.steward).get(reverse("governance:audit_csv"), _today()),
    ),
    Download(
        "bulk template API",
        "changerequest-bulk-template",
        "csv",
        lambda w: client_for(w.operator).get("/api/governance/change-requests/bulk-template/"),
        shows_typed_text=False,
    ),
    Download(
        "bulk template page",
        "governance:bulk_template",
        "csv",
        lambda w: _page(w.operator).get(reverse("governance:bulk_template")),
        shows_typed_text=False,
    ),
    Download(
        "audience API oneids",
        "audience-export",
        "csv",
        lambda w: client_for(w.operator).get(f"/api/audiences/audiences/{w.audience.pk}/export/"),
        shows_typed_text=False,
    ),
    *(
        Download(
            f"audience API identities ({user})",
            "audience-export",
            "csv",
            lambda w, user=user: client_for(getattr(w, user)).get(
                f"/api/audiences/audiences/{w.audience.pk}/export/", {"identity_type": "wechat_unionid"}
            ),
            expected=expected,
        )
        for user, expected in (("operator", _masked), ("admin", None))
    ),
    *(
        Download(
            f"audience page identities ({user})",
            "audiences:export",
            "csv",
            lambda w, user=user: _page(getattr(w, user)).post(
                reverse("audiences:export", args=[w.audience.pk]), {"identity_type": "wechat_unionid"}
            ),
            expected=expected,
        )
        for user, expected in (("operator", _masked), ("admin", None))
    ),
]

#: URL patterns whose names look like downloads but are not.
NOT_DOWNLOADS = {
    "governance:audit": "the audit page: a form and a table; its CSV is governance:audit_csv",
}

#: The code that builds a file or a file response, and the downloads that run it.
PRODUCERS = {
    "audiences/api/views.py:AudienceViewSet.export": {"audience-export"},
    "audiences/services.py:export_csv_chunks": {"audience-export", "audiences:export"},
    "audiences/views.py:export": {"audiences:export"},
    "catalog/export.py:export_xlsx": {"tag-export", "admin:catalog_tag_export"},
    "catalog/export.py:export_response": {
        "tag-export",
        "admin:catalog_tag_export",
        "admin-action:catalog.tag.export_selected",
    },
    "dashboards/views.py:download": {"dashboards:download"},
    "governance/api/views.py:ChangeRequestViewSet.bulk_template": {"changerequest-bulk-template"},
    "governance/api/views.py:AuditViewSet.list": {"audit-list"},
    "governance/audit.py:to_csv": {"audit-list", "governance:audit_csv"},
    "governance/bulk.py:template_csv": {"changerequest-bulk-template", "governance:bulk_template"},
    "governance/views.py:bulk_template": {"governance:bulk_template"},
    "governance/views.py:audit_csv": {"governance:audit_csv"},
}

#: Code that writes CSV that no person opens (so no formula can reach a spreadsheet).
NOT_DOWNLOAD_PRODUCERS = {
    "profiles/bulk.py:_copy_csv": "rows streamed into PostgreSQL's COPY FROM STDIN",
}


# ---------------------------------------------------------------------------
# Reading a download


def _content(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _csv_cells(content: bytes) -> list[str]:
    assert content.startswith(b"\xef\xbb\xbf"), content[:20]
    return [cell for row in csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")) for cell in row]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("download", DOWNLOADS, ids=lambda d: d.label)
def test_no_cell_of_a_download_runs_as_a_formula(planted, download):
    response = download.fetch(planted)
    assert response.status_code == 200, (download.label, response.status_code)
    assert "attachment" in response["Content-Disposition"]
    content = _content(response)
    if download.fmt == "csv":
        assert response["Content-Type"].startswith("text/csv")
        cells = _csv_cells(content)
        # A CSV cell is text or a number ("-1" is minus one): text must not start a formula.
        runnable = [c for c in cells if c.startswith(FORMULA_STARTS) and not _is_number(c)]
    else:
        assert content[:2] == b"PK", content[:20]
        cells = xlsx_texts(content)  # numbers are numeric cells: every text cell is text
        runnable = [c for c in cells if c.startswith(FORMULA_STARTS)]
    assert runnable == [], download.label
    if download.expected is not None:
        expected = download.expected(planted)
        assert len(expected) == len(PAYLOADS) and set(expected) <= set(cells), download.label
    elif download.shows_typed_text:
        shown = [c for c in cells if c.startswith("'") and any(p in c for p in PAYLOADS)]
        assert shown, f"{download.label}: no planted text reached the file"


# ---------------------------------------------------------------------------
# Nothing left out


DOWNLOAD_NAME = re.compile(r"export|download|csv|xlsx|bulk.template|audit", re.IGNORECASE)


def _url_names(patterns, prefix: str = "", namespace: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}" if namespace and pattern.namespace else None
            yield from _url_names(
                pattern.url_patterns,
                prefix + str(pattern.pattern),
                inner or pattern.namespace or namespace,
            )
        elif isinstance(pattern, URLPattern) and pattern.name:
            name = f"{namespace}:{pattern.name}" if namespace else pattern.name
            yield prefix + str(pattern.pattern), name


def test_every_download_route_and_admin_action_is_covered():
    found = {
        name
        for route, name in _url_names(get_resolver().url_patterns)
        if DOWNLOAD_NAME.search(f"{route} {name}")
    }
    for model, model_admin in admin.site._registry.items():
        for action in model_admin.actions or ():
            name = action if isinstance(action, str) else action.__name__
            if DOWNLOAD_NAME.search(name):
                found.add(f"admin-action:{model._meta.label_lower}.{name}")
    covered = {d.route for d in DOWNLOADS}
    assert found - set(NOT_DOWNLOADS) == covered, "a download the test does not cover, or one gone"


_MARKER_NAMES = {"attachment", "streaming_attachment", "csv_bytes", "csv_chunks", "xlsx_bytes"}
_MARKER_NAMES |= {"FileResponse", "StreamingHttpResponse", "HttpResponse", "Workbook", "to_csv", "to_excel"}


def _marks(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.lower() == "content-disposition"
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "csv":
        return func.attr in ("writer", "DictWriter")
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name == "HttpResponse":  # a file only when it names a content type of one
        return any(
            kw.arg == "content_type"
            and "json" not in ast.unparse(kw.value)
            and "html" not in ast.unparse(kw.value)
            for kw in node.keywords
        )
    return name in _MARKER_NAMES


def _producers() -> set[str]:
    """``"<path>:<function>"`` of every function that builds a file or a file response,
    outside the one writer."""
    root = Path(tagportal.__file__).parent
    found = set()
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).as_posix()
        if "migrations" in path.parts or relative == "core/spreadsheets.py":
            continue

        def visit(node, names, relative=relative):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                    visit(child, [*names, child.name])
                    continue
                if _marks(child):
                    found.add(f"{relative}:{'.'.join(names) or '<module>'}")
                visit(child, names)

        visit(ast.parse(path.read_text(encoding="utf-8")), [])
    return found


def test_every_file_the_code_builds_is_a_covered_download():
    assert _producers() == set(PRODUCERS) | set(NOT_DOWNLOAD_PRODUCERS), (
        "code that builds a file: add its download to DOWNLOADS"
    )
    covered = {d.route for d in DOWNLOADS}
    for producer, routes in PRODUCERS.items():
        assert routes and routes <= covered, producer
