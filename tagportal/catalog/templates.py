"""Industry template packs (``fixtures/templates/*.yaml``): loading and checking.

A pack is a YAML document::

    key: medical_aesthetics          # unique, used in commands and the API
    name: 医美                        # Chinese name
    name_en: Medical aesthetics
    version: 1
    naming_rule:                     # the rule its root categories get (created once, by name)
      name: 标准标签编码
      pattern: "{business_line}_{domain}_{name}"
      min_length: 3
      max_length: 64
      example_name: skin_type
    categories:                      # a tree; ``code`` is the domain part of tag codes
      - {code: basic, name: 基础属性, name_en: Basic attributes, children: [...]}
    tags:
      - name: skin_type              # snake_case name part; the code is built by the naming rule
        category: basic/profile      # path of category codes
        zh: 肤质类型
        en: Skin type
        description: ...
        kind: system|behavior|algorithm|composite|manual
        value_type: boolean|enum|number
        refresh_mode: batch|realtime  (default batch)
        unit: 次                      (optional)
        values: [{code: oily, label: 油性, label_en: Oily}, ...]
        definition: {...}            # a rule document (tagportal.rules.definitions);
                                     # {"tag": "@other_name"} refers to another tag of the pack
        model: {kind: churn, output: churn_level, parameters: {...}}
                                     # (optional) an algorithm model's output fills the tag:
                                     # kind algorithm, definition {type: manual} (the engine
                                     # leaves it alone), values those of the output; applying
                                     # the pack links it to the brand's model of that kind
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import yaml
from django.conf import settings
from django.utils.translation import gettext as _

from tagportal.rules.definitions import RuleValidationError, validate_definition

from . import naming
from .choices import RefreshMode, TagKind, ValueType

CATEGORY_CODE_RE = re.compile(r"^[a-z][a-z0-9]*$")
TEMPLATE_DIR = Path(settings.BASE_DIR) / "fixtures" / "templates"
TAG_KEYS = {
    "name", "category", "zh", "en", "description", "kind", "value_type", "refresh_mode", "unit",
    "values", "definition", "model",
}  # fmt: skip
MODEL_KEYS = {"kind", "output", "parameters"}


class TemplateError(ValueError):
    pass


@dataclass
class TemplatePack:
    key: str
    name: str
    name_en: str
    version: int
    naming_rule: dict
    categories: list[dict]
    tags: list[dict] = field(default_factory=list)
    path: Path | None = None

    def category_paths(self) -> dict[str, dict]:
        paths: dict[str, dict] = {}

        def walk(nodes, prefix):
            for node in nodes:
                path = f"{prefix}/{node['code']}" if prefix else node["code"]
                paths[path] = node
                walk(node.get("children", []), path)

        walk(self.categories, "")
        return paths

    def references(self, tag: dict) -> set[str]:
        """Template names of the pack's tags that ``tag``'s definition reads."""
        found: set[str] = set()

        def walk(node):
            if isinstance(node, dict):
                ref = node.get("tag")
                if isinstance(ref, str) and ref.startswith("@"):
                    found.add(ref[1:])
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk(tag.get("definition"))
        return found

    def ordered_tags(self) -> list[dict]:
        """Tags with every tag after the tags it reads."""
        by_name = {t["name"]: t for t in self.tags}
        done: list[dict] = []
        seen: set[str] = set()
        visiting: set[str] = set()

        def visit(tag):
            if tag["name"] in seen:
                return
            if tag["name"] in visiting:
                raise TemplateError(
                    _("Tags of the template read each other in a cycle: %(name)s") % {"name": tag["name"]}
                )
            visiting.add(tag["name"])
            for ref in sorted(self.references(tag)):
                if ref in by_name:
                    visit(by_name[ref])
            visiting.discard(tag["name"])
            seen.add(tag["name"])
            done.append(tag)

        for tag in self.tags:
            visit(tag)
        return done


def resolve_references(definition, codes: dict[str, str]):
    """A copy of ``definition`` with ``{"tag": "@name"}`` replaced by real codes."""

    def walk(node):
        if isinstance(node, dict):
            out = {k: walk(v) for k, v in node.items()}
            ref = node.get("tag")
            if isinstance(ref, str) and ref.startswith("@"):
                out["tag"] = codes.get(ref[1:], ref)
            return out
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(copy.deepcopy(definition))


def load_pack(path: Path) -> TemplatePack:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{path.name}: expected a mapping at the top")
    try:
        return TemplatePack(
            key=data["key"],
            name=data["name"],
            name_en=data.get("name_en", ""),
            version=int(data.get("version", 1)),
            naming_rule=data["naming_rule"],
            categories=data["categories"],
            tags=data.get("tags", []),
            path=path,
        )
    except KeyError as exc:
        raise TemplateError(f"{path.name}: missing {exc.args[0]!r}") from exc


@cache
def _packs(directory: str) -> dict[str, TemplatePack]:
    packs = {}
    for path in sorted(Path(directory).glob("*.yaml")):
        pack = load_pack(path)
        if pack.key in packs:
            raise TemplateError(
                f"{path.name}: the key {pack.key!r} is also used by {packs[pack.key].path.name}"
            )
        packs[pack.key] = pack
    return packs


def available_packs() -> dict[str, TemplatePack]:
    return _packs(str(TEMPLATE_DIR))


def get_pack(key: str) -> TemplatePack:
    packs = available_packs()
    if key not in packs:
        raise TemplateError(
            _("Unknown template %(key)r; available: %(keys)s")
            % {"key": key, "keys": ", ".join(sorted(packs))}
        )
    return packs[key]


def pack_label(key: str) -> str:
    """How a page names the template ``key``: its display name (医美), the key itself for
    a pack no longer installed, "—" for none."""
    if not key:
        return "—"
    pack = available_packs().get(key)
    return pack.name if pack else key


#: The longest business line code (codes must fit the rule's length with any business line).
LONGEST_BUSINESS_LINE = "b" * 20


def model_errors(tag: dict) -> list[str]:
    """Problems with a template tag's ``model`` declaration: its shape here, what it
    names by the judges registered in :mod:`.hooks` (the predictive app's kinds)."""
    from . import hooks

    model = tag["model"]
    if not isinstance(model, dict) or not model.get("kind") or not model.get("output"):
        return ["model must be a mapping with a kind and an output"]
    problems = []
    unknown = set(model) - MODEL_KEYS
    if unknown:
        problems.append(f"model: unknown keys {sorted(unknown)}")
    if not isinstance(model.get("parameters", {}), dict):
        problems.append("model: parameters must be a mapping")
    if tag.get("kind") != TagKind.ALGORITHM:
        problems.append("a model-backed tag is of kind algorithm")
    if tag.get("definition") != {"type": "manual"}:
        problems.append("a model-backed tag has the definition {type: manual} (the model fills it)")
    if problems:
        return problems
    codes = [str(v.get("code")) for v in tag.get("values", []) if isinstance(v, dict)]
    return [f"model: {e}" for e in hooks.model_problems(model, tag.get("value_type", ""), codes)]


def check_pack(
    pack: TemplatePack, business_line: str = LONGEST_BUSINESS_LINE, brand: str = "demo"
) -> list[str]:
    """Every problem with a pack, without touching the database."""
    from .validation import values_errors

    problems: list[str] = []
    rule = pack.naming_rule
    problems += [f"naming_rule: {e}" for e in naming.pattern_errors(rule.get("pattern", ""))]
    categories = pack.category_paths()
    for path, node in categories.items():
        for key in ("code", "name", "name_en"):
            if not node.get(key):
                problems.append(f"category {path}: missing {key}")
        if not CATEGORY_CODE_RE.match(str(node.get("code", ""))):
            problems.append(
                f"category {path}: the code must be lower-case letters and digits, starting with a letter"
            )
    names = [t.get("name") for t in pack.tags]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        problems.append(f"duplicate tag names: {', '.join(sorted(map(str, duplicates)))}")
    outputs = [
        (t["model"].get("kind"), t["model"].get("output"))
        for t in pack.tags
        if isinstance(t.get("model"), dict)
    ]
    twice = sorted({f"{k}/{o}" for k, o in outputs if outputs.count((k, o)) > 1})
    if twice:
        problems.append(f"model outputs filling more than one tag: {', '.join(twice)}")
    parameters: dict[str, list] = {}
    for t in pack.tags:
        if isinstance(t.get("model"), dict):
            found = parameters.setdefault(str(t["model"].get("kind")), [])
            if t["model"].get("parameters", {}) not in found:
                found.append(t["model"].get("parameters", {}))
    clash = sorted(kind for kind, found in parameters.items() if len(found) > 1)
    if clash:
        problems.append(f"tags of one model declare different parameters: {', '.join(clash)}")
    value_types = {t.get("name"): t.get("value_type") for t in pack.tags}
    codes = {}
    for tag in pack.tags:
        where = f"tag {tag.get('name')}"
        unknown = set(tag) - TAG_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("name", "category", "zh", "en", "description", "kind", "value_type", "definition"):
            if not tag.get(key):
                problems.append(f"{where}: missing {key}")
        if tag.get("category") not in categories:
            problems.append(f"{where}: unknown category {tag.get('category')!r}")
            continue
        if tag.get("kind") not in TagKind.values:
            problems.append(f"{where}: unknown kind {tag.get('kind')!r}")
        is_manual = (tag.get("definition") or {}).get("type") == "manual"
        if "model" in tag:
            problems += [f"{where}: {e}" for e in model_errors(tag)]
        elif (tag.get("kind") == TagKind.MANUAL) != is_manual:
            problems.append(
                f"{where}: manual tags and model-backed tags, and only they, have the definition {{type: manual}}"
            )
        if tag.get("refresh_mode", "batch") not in RefreshMode.values:
            problems.append(f"{where}: unknown refresh_mode {tag.get('refresh_mode')!r}")
        if tag.get("value_type") not in ValueType.values:
            problems.append(f"{where}: unknown value_type {tag.get('value_type')!r}")
            continue
        problems += [f"{where}: {e}" for e in values_errors(tag.get("values", []), tag["value_type"])]
        context = naming.CodeContext(
            business_line=business_line, brand=brand, domain=tag["category"].split("/")[-1]
        )
        code = naming.build_code(rule["pattern"], context, tag["name"])
        codes[tag["name"]] = code
        regex = naming.pattern_regex(rule["pattern"], context)
        if not regex.match(code) or not (
            rule.get("min_length", 3) <= len(code) <= rule.get("max_length", 64)
        ):
            problems.append(f"{where}: code {code!r} breaks the pack's naming rule")
    for tag in pack.tags:
        if tag.get("value_type") not in ValueType.values or not tag.get("definition"):
            continue
        refs = pack.references(tag)
        missing = refs - set(value_types)
        if missing:
            problems.append(f"tag {tag['name']}: reads unknown template tags {sorted(missing)}")
            continue
        known = {codes.get(n): value_types[n] for n in value_types if n != tag["name"]}
        try:
            info = validate_definition(
                resolve_references(tag["definition"], codes),
                value_type=tag["value_type"],
                value_codes=[v["code"] for v in tag.get("values", [])]
                if tag["value_type"] == "enum"
                else None,
                known_tag=known.get,
            )
        except RuleValidationError as exc:
            problems += [f"tag {tag['name']}: definition {e}" for e in exc.errors]
            continue
        if tag.get("kind") == TagKind.COMPOSITE and not info.tags:
            problems.append(f"tag {tag['name']}: a composite tag must read other tags")
    try:
        pack.ordered_tags()
    except TemplateError as exc:
        problems.append(str(exc))
    return problems
