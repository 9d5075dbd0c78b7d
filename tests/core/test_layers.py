"""The apps are stacked (docs/architecture.md): every import from one app of another
points down the stack, at module or function level, and no module uses a ``_private``
name of another app. Project-level wiring (settings, root URLs, Celery, the demo
bootstrap) may import every app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2] / "tagportal"

#: Lowest first. An app imports only apps before it in this list.
LAYERS = [
    "core", "usage", "notifications", "rules", "catalog", "profiles", "engine", "predictive",
    "audiences", "activation", "journeys", "lineage", "governance", "dashboards",
]  # fmt: skip
#: Project-level wiring: may import every app.
PROJECT = {"demo", "urls", "api_urls", "settings", "settings_test", "celery", "wsgi", "asgi", "__init__"}


def app_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tagportal" else None


def modules():
    for path in sorted(ROOT.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        dotted = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        yield path, dotted, app_of(dotted)


def imports_of(tree: ast.AST):
    """``(line, module, names)`` of every absolute import, at any depth."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module, [(a.name, a.asname) for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name, [("", a.asname)]


def violations(path: Path, here: str) -> tuple[list[str], list[str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    upward, private = [], []
    aliases = {}  # local name -> the other app's module or object it is bound to
    for line, module, names in imports_of(tree):
        there = app_of(module)
        if there is None or there == here or there in PROJECT:
            continue
        if there not in LAYERS or LAYERS.index(there) > LAYERS.index(here):
            upward.append(f"{path}:{line} {here} imports {module} ({there})")
        for name, asname in names:
            if name.startswith("_"):
                private.append(f"{path}:{line} {here} takes {module}.{name}")
            if asname or name:
                aliases[asname or name] = f"{module}.{name}" if name else module
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            private.append(f"{path}:{node.lineno} {here} uses {aliases[node.value.id]}.{node.attr}")
    return upward, private


def test_every_app_has_a_place_in_the_layers():
    apps = {app_of(name) for name in settings.INSTALLED_APPS if name.startswith("tagportal.")}
    assert apps - PROJECT <= set(LAYERS), sorted(apps - PROJECT - set(LAYERS))
    on_disk = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    assert on_disk - PROJECT <= set(LAYERS), sorted(on_disk - PROJECT - set(LAYERS))


def test_imports_point_down_the_layers_and_take_no_private_names():
    upward, private = [], []
    for path, _dotted, here in modules():
        if here is None or here in PROJECT:
            continue
        found_up, found_private = violations(path, here)
        upward += found_up
        private += found_private
    assert upward == [], "\n".join(upward)
    assert private == [], "\n".join(private)


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from tagportal.engine import services", (1, 0)),  # catalog -> engine: upward
        ("def f():\n    from tagportal.lineage.models import DataSource", (1, 0)),  # also in a function
        ("from tagportal.core.days import BEIJING", (0, 0)),  # downward
        ("from tagportal.core.permissions import _is_direct", (0, 1)),  # a private name
        ("from tagportal.core import permissions\npermissions._is_direct(None)", (0, 1)),
        ("from tagportal.demo import catalog", (0, 0)),  # project level is not an app
    ],
)
def test_the_check_itself_catches_what_it_should(tmp_path, source, expected):
    module = tmp_path / "module.py"
    module.write_text(source, encoding="utf-8")
    upward, private = violations(module, "catalog")
    assert (len(upward), len(private)) == expected
