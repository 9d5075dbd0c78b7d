"""Every page, as each role, in Chinese: the demo world is walked with
``Accept-Language: zh-hans`` (portal pages, the admin's changelists and the pages they
link to, a bounded crawl) and a page fails when it answers 500, shows an English
string the project's catalogue translates, or shows a raw choice value (``success``,
``medical_aesthetics``) where its label belongs."""

from __future__ import annotations

import json
import re
import time
from collections import Counter, deque
from functools import cache
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import models
from django.test import Client, override_settings
from django.urls import NoReverseMatch, get_resolver, reverse
from django.utils import translation

from tagportal.catalog.templates import available_packs

from ..conftest import in_module_transaction

ROOT = Path(settings.BASE_DIR)
CATALOGUE = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}
#: The demo's login of each role.
ROLES = ("admin", "steward", "operator", "analyst")
#: The walk's bound, per role.
MOST_PAGES = 400
#: Pages of one shape (the path with its numbers blanked, and its query's keys) visited per role.
PER_SHAPE = 1
#: The portal's own address spaces; anything else (the API, static files) is not walked.
PORTAL = ("/admin/", "/lineage/", "/review/", "/audiences/", "/dashboards/", "/models/", "/activation/")
#: Addresses not to GET: leaving, downloads, and pages whose GET changes something.
SKIPPED = re.compile(
    r"/logout/|/delete/|/export|/download/|\.csv|/csv/|/jsi18n/|/password/|/autocomplete/"
    r"|/inbox/\d+/|/r/\d+/\d+/"
)
#: Admin pages whose text is the same for every role that reaches them: walked as the admin.
SAME_FOR_ALL = re.compile(r"^/admin/.+/(?:add|history/\d+)/$")
#: Text attributes a reader sees (buttons, tooltips, placeholders).
SEEN_ATTRIBUTES = {"title", "placeholder", "aria-label", "alt"}
PLACEHOLDER = re.compile(r"%\(\w+\)[sdfi]|%[sdfi]|\{\w*\}")
#: Keys of a chart's JSON that hold data, not words.
DATA_KEYS = {"x", "y", "z", "customdata", "ids", "hovertemplate", "texttemplate"}
SNAKE = re.compile(r"[a-z]+(?:_[a-z0-9]+)*")


# --- the catalogues ----------------------------------------------------------------------


def read_po(path: Path) -> list[dict]:
    """The entries of a .po file: ``{"msgctxt", "msgid", "msgid_plural", "msgstr"}``
    (``msgstr`` the first form), without the header, obsolete or fuzzy entries."""
    entries, entry, key, fuzzy = [], {}, None, False

    def close():
        nonlocal entry, fuzzy
        if entry.get("msgid") and not fuzzy:
            entries.append(entry)
        entry, fuzzy = {}, False

    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            close()
            continue
        if line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
        if line.startswith("#"):
            continue
        match = re.match(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[0\])?|msgstr\[\d+\])\s+"(.*)"$', line)
        if match:
            key = match.group(1).replace("[0]", "")
            if key.startswith("msgstr["):  # other plural forms: not needed
                key = None
                continue
            if key == "msgid" and "msgid" in entry:
                close()
            entry[key] = _unquote(match.group(2))
        elif line.startswith('"') and key:
            entry[key] = entry.get(key, "") + _unquote(line[1:-1])
    close()
    return entries


ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: ESCAPES.get(m.group(1), m.group(1)), text)


def others_msgids() -> set[str]:
    """Every msgid of Django's and the installed libraries' catalogues: their strings are
    theirs to translate (the admin's "Save", "History" …)."""
    roots = [Path(__import__("django").__file__).parent / "conf"]
    roots += [Path(app.path) for app in apps.get_app_configs() if not app.name.startswith("tagportal")]
    found = set()
    for root in roots:
        for lang in ("en", "zh_Hans"):
            for po in (root / "locale" / lang / "LC_MESSAGES").glob("django*.po"):
                found.update(e["msgid"] for e in read_po(po))
    return found


@cache
def watched_strings() -> dict[str, str]:
    """``{English: Chinese}``: the project's translated msgids that must not be seen in
    English on a Chinese page. Left out: Django's own strings, ids translated as
    themselves (``AUC``, ``OneID``), very short ones and bare placeholders."""
    theirs = others_msgids()
    watched = {}
    for entry in read_po(CATALOGUE):
        msgid, msgstr = entry["msgid"], entry.get("msgstr", "")
        if msgid in theirs or not msgstr or msgstr == msgid:
            continue
        letters = re.sub(r"[^A-Za-z]", "", PLACEHOLDER.sub("", msgid))
        if len(letters) < 4:
            continue
        watched[msgid] = msgstr
    return watched


@cache
def exact_and_patterns():
    """Msgids matched as a whole text (no placeholder) and as a pattern (with one)."""
    exact, patterns = {}, []
    for msgid in watched_strings():
        if "<" in msgid:  # a marked-up sentence comes out in pieces: left out
            continue
        if PLACEHOLDER.search(msgid):
            literal = PLACEHOLDER.sub("", msgid)
            if len(re.findall(r"[A-Za-z]{2,}", literal)) < 3 or len(re.sub(r"[^A-Za-z]", "", literal)) < 12:
                continue  # too little of it is the sentence itself
            parts = [" ".join(part.split()) for part in PLACEHOLDER.split(msgid)]
            pattern = r"(?<![A-Za-z])" + r".{1,80}?".join(map(re.escape, parts)) + r"(?![A-Za-z])"
            patterns.append((msgid, max(parts, key=len).strip(), re.compile(pattern)))
        else:
            exact[" ".join(msgid.split())] = msgid
    return exact, patterns


@cache
def raw_values() -> dict[str, str]:
    """``{value: where it comes from}``: the project's choice values that read as code
    (``in_review``, ``success``) and the template packs' keys."""
    found = {}

    def walk(cls):
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("tagportal"):
                for value, label in sub.choices:
                    if isinstance(value, str) and SNAKE.fullmatch(value) and str(label) != value:
                        found.setdefault(value, f"{sub.__module__}.{sub.__name__}")
            walk(sub)

    walk(models.TextChoices)
    for key in available_packs():
        found.setdefault(key, "an industry template's key")
    return found


# --- what a page shows -------------------------------------------------------------------


class Page(HTMLParser):
    """The text a reader sees on a page, its table cells, and its links."""

    HIDDEN = {"script", "style", "noscript"}
    #: Elements that show data as it is stored: codes and English names.
    DATA = re.compile(r"code|name_en|^field-name$|^tp-stored$")
    VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.cells: list[str] = []
        self.links: list[str] = []
        self._stack: list[tuple[str, bool]] = []  # (tag, shows data)
        self._json: list[str] | None = None
        self._cell: list[str] | None = None
        self._cell_tag = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        for name in SEEN_ATTRIBUTES & attrs.keys():
            self.texts.append(attrs[name] or "")
        if tag == "input" and attrs.get("type") in ("submit", "button", "reset") and attrs.get("value"):
            self.texts.append(attrs["value"])
        if tag == "script" and attrs.get("type") == "application/json":
            self._json = []
        if tag in ("td", "th") or (tag == "div" and "readonly" in (attrs.get("class") or "").split()):
            self._cell, self._cell_tag = [], tag
        if tag not in self.VOID:
            data = tag == "code" or any(self.DATA.search(c) for c in (attrs.get("class") or "").split())
            self._stack.append((tag, data))

    def handle_endtag(self, tag):
        if self._cell is not None and tag == self._cell_tag:
            self.cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "script" and self._json is not None:
            self._json_strings("".join(self._json))
            self._json = None
        while any(t == tag for t, _ in self._stack):
            if self._stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if self._json is not None:
            self._json.append(data)
            return
        if any(t in self.HIDDEN or shows_data for t, shows_data in self._stack):
            return
        self.texts.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def _json_strings(self, text):
        """The labels inside a page's JSON (a chart's titles and legend, a builder's words)."""
        try:
            data = json.loads(text)
        except ValueError:
            return

        def walk(node, key=""):
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(v, k)
            elif isinstance(node, list):
                for v in node:
                    walk(v, key)
            elif isinstance(node, str) and key not in DATA_KEYS and not SNAKE.fullmatch(node):
                self.texts.append(node)  # prose, not a machine word (``left``, ``category``)

        walk(data)


def clean(text: str) -> str:
    return " ".join(text.split()).strip(" :：*·|")


def english_names() -> set[str]:
    """The English names the data holds (a category's ``name_en``): English on purpose."""
    found = set()
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if field.name in ("name_en", "label_en"):
                found.update(clean(v) for v in model._default_manager.values_list(field.name, flat=True))
    return found


def problems_on(page: Page, data: set[str] = frozenset()) -> list[str]:
    exact, patterns = exact_and_patterns()
    found = []
    texts = {clean(t) for t in page.texts} - {""} - data
    for text in texts:
        if text in exact:
            found.append(f"English “{exact[text]}” (→ {watched_strings()[exact[text]]})")
            continue
        if not re.search(r"[A-Za-z]{3}", text):
            continue
        for msgid, anchor, pattern in patterns:
            if anchor in text and pattern.search(text):  # the plain search first: quicker
                found.append(f"English “{msgid}” in “{text[:120]}”")
    values = raw_values()
    for cell in set(page.cells):
        # a cell whose English words are all choice values ("状态: draft → submitted"), or
        # a word that is plainly code (``medical_aesthetics``); English prose is left alone
        words = re.findall(r"(?<![\w.-])[a-z][a-z0-9_]*(?![\w.-])", cell)  # not in ``crm.city``
        if re.search(r"[A-Z]", cell) and not any("_" in w for w in words):
            words = []  # a sentence, a name
        raw = set(words) if words and set(words) <= values.keys() else {w for w in words if "_" in w}
        for word in sorted(raw & values.keys()):
            found.append(f"raw value “{word}” ({values[word]}) in “{cell[:80]}”")
    return found


# --- the walk ----------------------------------------------------------------------------


def shape(url: str) -> tuple:
    parts = urlsplit(url)
    return re.sub(r"\d+", "N", parts.path), tuple(sorted({k for k, _ in parse_qsl(parts.query)}))


def walkable(url: str) -> str | None:
    """The address to GET for a link, or ``None`` when it is not walked."""
    parts = urlsplit(url)
    if parts.scheme not in ("", "http") or parts.netloc not in ("", "testserver"):
        return None
    path = parts.path
    if not path.startswith(PORTAL) or SKIPPED.search(path):
        return None
    if path.startswith("/admin/") or not parts.query:
        return path  # the admin's filtered, sorted and paged lists are the same page again
    return f"{path}?{parts.query}"


def seeds() -> list[str]:
    """The portal's pages without arguments, and every registered model's changelist."""
    found = ["/admin/"]
    resolver = get_resolver()
    for namespace in ("lineage", "governance", "audiences", "dashboards", "predictive", "activation"):
        for name in resolver.namespace_dict[namespace][1].reverse_dict:
            if isinstance(name, str):
                try:
                    found.append(reverse(f"{namespace}:{name}"))
                except NoReverseMatch:
                    pass  # needs an argument: reached through links
    for model in admin.site._registry:
        opts = model._meta
        found.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    return [url for url in found if walkable(url)]


def walk(client: Client, most: int = MOST_PAGES, every_form: bool = True) -> dict:
    """GET the portal's pages in Chinese, breadth first: ``{"pages", "errors", "problems"}``.
    Without ``every_form``, the admin's empty add forms and past versions are left out
    (the same templates for every role: one role walking them is enough)."""
    queue = deque(seeds())
    seen, shapes = set(queue), Counter()
    pages, errors, problems = 0, [], {}
    data = english_names()
    while queue and pages < most:
        url = queue.popleft()
        if shapes[shape(url)] >= PER_SHAPE or (not every_form and SAME_FOR_ALL.search(url)):
            continue
        shapes[shape(url)] += 1
        pages += 1
        try:
            response = client.get(url, **CHINESE)
        except Exception as error:  # a page that breaks is what the walk looks for
            errors.append(f"{url}: {type(error).__name__}: {error}")
            continue
        if response.status_code >= 500:
            errors.append(f"{url}: {response.status_code}")
            continue
        links = []
        if response.status_code in (301, 302) and response.get("Location"):
            links.append(response["Location"])
        if "text/html" in response.get("Content-Type", "") and not response.streaming:
            page = Page()
            page.feed(response.content.decode())
            page.close()
            found = problems_on(page, data)
            if found:
                problems[url] = sorted(set(found))
            links += page.links
        for link in links:
            if link.startswith("?"):
                link = urlsplit(url).path + link
            elif not link.startswith(("/", "http")):
                continue
            target = walkable(link)
            if target and target not in seen:
                seen.add(target)
                queue.append(target)
    return {"pages": pages, "errors": errors, "problems": problems}


# --- the tests ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker):
    """The demo world (``bootstrap_demo``), made once for the module in Chinese, as a
    Chinese deployment makes it."""

    def build():
        started, cpu = time.perf_counter(), time.process_time()
        with override_settings(LANGUAGE_CODE="zh-hans"), translation.override("zh-hans"):
            call_command("bootstrap_demo", "--people", "30", "--no-models", stdout=StringIO())
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(f"demo world in {seconds:.1f} s ({cpu:.1f} s of processor time)")
        return True

    yield from in_module_transaction(django_db_blocker, build)


@pytest.mark.parametrize("role", ROLES)
def test_every_page_is_in_chinese(demo, db, role):
    client = Client()
    client.force_login(get_user_model().objects.get(username=role))
    started, cpu = time.perf_counter(), time.process_time()
    result = walk(client, every_form=role == "admin")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"{role}: {result['pages']} pages in {seconds:.1f} s ({cpu:.1f} s of processor time)")
    assert result["pages"] >= 30  # the walk reached the portal, not only a login page
    assert result["errors"] == []
    report = "\n".join(f"{url}\n    " + "\n    ".join(found) for url, found in result["problems"].items())
    assert not result["problems"], f"untranslated on {len(result['problems'])} pages:\n{report}"


def test_the_walk_sees_english_and_raw_values():
    """The checks themselves: a page with an English label, a raw status and a pack's
    key is flagged; the same page in Chinese is not."""
    english = next(m for m in watched_strings() if m in exact_and_patterns()[0].values())
    page = Page()
    page.feed(
        f"<h1>{english}</h1><table><tr><td>draft → published</td><td>medical_aesthetics</td></tr></table>"
    )
    found = " ".join(problems_on(page))
    assert (
        english in found and "“draft”" in found and "“published”" in found and "medical_aesthetics" in found
    )
    msgid, _anchor, _pattern = exact_and_patterns()[1][0]
    sentence = PLACEHOLDER.sub("12", msgid)
    page = Page()
    page.feed(
        f"<p>{sentence}</p><table><tr><td>status: crm.city</td><td><code>in_review</code></td></tr></table>"
    )
    assert problems_on(page) == [f"English “{msgid}” in “{clean(sentence)}”"]
    page = Page()
    page.feed(f"<h1>{watched_strings()[english]}</h1><table><tr><td>草稿 → 已发布</td></tr></table>")
    assert problems_on(page) == []


def test_words_that_read_two_ways_say_what_they_mean(demo, db):
    """A rule's "Operator" is 运算符 (the role is 运营), a date range runs 起始日期 to
    截止日期 (a comparison of versions 起始版本 to 目标版本), and the activity chart counts
    新增 tags (not a date, 创建时间)."""
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    builder = client.get("/audiences/new/", **CHINESE).content.decode()
    config = re.search(
        r'<script id="tp-builder-config" type="application/json">(.*?)</script>', builder, re.S
    )
    assert json.loads(config.group(1))["strings"]["operator"] == "运算符"
    dashboards = client.get("/dashboards/", **CHINESE).content.decode()
    assert "起始日期" in dashboards and "截止日期" in dashboards and "起始版本" not in dashboards
    activity = client.get("/dashboards/activity/", {"measure": "created"}, **CHINESE).content.decode()
    assert "新增" in activity and "创建时间" not in activity
    tags = client.get("/admin/catalog/tag/", **CHINESE).content.decode()
    assert "?template=medical_aesthetics" in tags and ">medical_aesthetics<" not in tags  # named 医美
    with translation.override("zh-hans"):
        assert str(translation.pgettext("version comparison", "From")) == "起始版本"
        assert str(translation.gettext("Operator")) == "运营"  # the role
