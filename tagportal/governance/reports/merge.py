"""Merge suggestions: pairs of tags of one brand that look like duplicates.

Tags belong to a brand, so only tags of the same brand pair up (the same template in
two brands is no duplicate). Both tags are published, deprecated or in review, and at
least one is published: a merge goes into a published tag. A pair is found by any of:

1. **definition**: the same normalised definition (:func:`normalise_definition`: keys
   sorted, the children of ``all`` / ``any`` groups and ``where`` filters flattened,
   de-duplicated and sorted, ``in`` / ``not_in`` lists sorted, operators and other
   keywords stripped and lower-cased, ``2.0`` written ``2``), the same value type
   and the same values. Empty and ``manual`` definitions never match.
2. **name**: near-identical Chinese names, their pinyin (:func:`~tagportal.core.pinyin.readings`)
   or English names, compared without case, width or spacing differences with the
   better of ``fuzz.ratio`` and ``fuzz.token_sort_ratio``: a score of at least
   ``NAME_SCORE`` (90). Names whose numbers differ (近30天 / 近90天) never match;
   pinyin only matches names equal but for their Chinese characters, and is only
   reported when it scores higher than the Chinese name (homophones: 复购 / 复够).
3. **overlap**: the same people. Yes/no tags compare the people holding "yes"; enum
   and number tags (same value type only) compare everyone holding a value and must
   also agree value by value: for each value of one tag the best-matching value of
   the other, ``Σ_a max_b |A_a ∩ B_b| / |A ∪ B|``, taken both ways (the smaller one),
   at least ``OVERLAP`` (0.95), like the Jaccard index itself. Candidates are pruned
   by size first (a Jaccard index of t needs min/max size ≥ t), so bitmaps are read
   only for tags of similar size.

Row: ``{"a", "b"}`` (tag briefs, ``a`` the lower id), ``evidence`` (definition, name
and overlap findings), ``score`` (definition 1.0, overlap its Jaccard index, name its
score / 100; the highest), ``target`` (the tag to keep: the published one, then the
one used more in the period, then the older one) and ``fingerprint`` (per tag its
version, status and definition hash: :func:`fingerprint`, which the cleanup compares
to refuse acting on a pair whose tags changed since the report).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import unicodedata
from collections import defaultdict

import numpy as np
from pyroaring import BitMap
from rapidfuzz import fuzz, process

from tagportal.catalog.choices import TagStatus, ValueType
from tagportal.catalog.models import Tag
from tagportal.core import pinyin
from tagportal.engine import results

from . import ReportScope
from .usage import brief, brief_tags, period_json, period_uses, tag_ids, tag_regions

#: Lowest name similarity (0–100) that makes a pair.
NAME_SCORE = 90
#: Lowest Jaccard index (and value agreement) of the members that makes a pair.
OVERLAP = 0.95
#: Names compared at once with the (not much longer) names after them.
NAME_CHUNK = 256

STATUSES = (TagStatus.PUBLISHED, TagStatus.DEPRECATED, TagStatus.IN_REVIEW)
#: Keys whose string values are keywords (compared without case or spaces).
KEYWORDS = frozenset({"type", "op", "agg", "pick", "days_since", "source"})
#: Groups whose children may be in any order.
COMMUTATIVE = frozenset({"all", "any", "where"})
#: Operators whose value is a set.
SET_OPS = frozenset({"in", "not_in"})
#: Definitions that say nothing about how values are computed.
EMPTY_TYPES = frozenset({"", "manual"})


# ---------------------------------------------------------------------------
# Definitions


def _canonical(node, key: str | None = None):
    if isinstance(node, dict):
        out = {str(k): _canonical(v, str(k)) for k, v in node.items()}
        if isinstance(out.get("op"), str) and out["op"] in SET_OPS and isinstance(out.get("value"), list):
            out["value"] = sorted(out["value"], key=_dump)
        for group in ("all", "any"):  # {"all": [X]} is X
            if set(out) == {group} and isinstance(out[group], list) and len(out[group]) == 1:
                return out[group][0]
        return out
    if isinstance(node, list):
        items = [_canonical(item) for item in node]
        if key in COMMUTATIVE:
            flat = []
            for item in items:  # all(a, all(b, c)) is all(a, b, c)
                if key in ("all", "any") and isinstance(item, dict) and set(item) == {key}:
                    flat.extend(item[key] if isinstance(item[key], list) else [item[key]])
                else:
                    flat.append(item)
            items = sorted({_dump(item): item for item in flat}.values(), key=_dump)
        return items
    if isinstance(node, str):
        text = node.strip()
        return text.lower() if key in KEYWORDS else text
    if isinstance(node, float) and node.is_integer():
        return int(node)
    return node


def _dump(node) -> str:
    return json.dumps(node, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def normalise_definition(definition) -> str:
    """The canonical JSON text of a rule document: equal for definitions that differ
    only in key order, the order of ``all`` / ``any`` / ``where`` children, the order
    of ``in`` lists, spacing and case of keywords. ``""`` for an empty definition."""
    if not definition or not isinstance(definition, dict):
        return ""
    return _dump(_canonical(definition))


def definition_hash(definition) -> str:
    """SHA-1 (hex) of :func:`normalise_definition`."""
    return hashlib.sha1(normalise_definition(definition).encode("utf-8")).hexdigest()


def _matchable(definition) -> bool:
    if not definition or not isinstance(definition, dict):
        return False
    kind = str(definition.get("type") or "").strip().lower()
    return kind not in EMPTY_TYPES


def fingerprint(tag: Tag) -> dict:
    """What must not have changed for a merge suggestion about ``tag`` to still hold."""
    return _fingerprint(tag, definition_hash(tag.definition))


def _fingerprint(tag: Tag, digest: str) -> dict:
    return {"version": tag.published_version, "status": tag.status, "definition": digest}


# ---------------------------------------------------------------------------
# Names

_SPACES = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")


def _plain(text: str) -> str:
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text or "").casefold()).strip()


def name_keys(tag: Tag) -> dict[str, str]:
    """What names are compared by: the Chinese name without spaces, its pinyin (when
    it has Chinese characters) and the English name, each normalised ("" to skip)."""
    name = _plain(tag.name).replace(" ", "")
    return {
        "name": name,
        "pinyin": pinyin.readings(name) if pinyin.CJK.search(name) else "",
        "name_en": _plain(tag.name_en),
    }


def _similar(texts: list[str], words: bool = True) -> dict[tuple[int, int], float]:
    """``{(i, j): score}`` (i < j) of the texts scoring at least ``NAME_SCORE``
    (``words``: texts of several words, also compared with their words sorted).

    Both scores are at most ``200 × shorter / (shorter + longer)``, so texts sorted by
    length are only compared with texts at most ``200 / NAME_SCORE − 1`` (22 %) longer."""
    order = sorted((i for i, text in enumerate(texts) if text), key=lambda i: (len(texts[i]), i))
    if len(order) < 2:
        return {}
    values = [texts[i] for i in order]
    lengths = np.array([len(text) for text in values])
    reach = 200 / NAME_SCORE - 1
    found: dict[tuple[int, int], float] = {}
    for lo in range(0, len(values), NAME_CHUNK):
        hi = min(len(values), lo + NAME_CHUNK)
        end = int(np.searchsorted(lengths, lengths[hi - 1] * reach + 1e-9, side="right"))
        scores = None
        for scorer in (fuzz.ratio, fuzz.token_sort_ratio) if words else (fuzz.ratio,):
            matrix = process.cdist(
                values[lo:hi],
                values[lo:end],
                scorer=scorer,
                score_cutoff=NAME_SCORE,
                dtype=np.float32,
                workers=-1,
            )
            scores = matrix if scores is None else np.maximum(scores, matrix)
        rows, cols = np.nonzero(scores)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            if r < c:  # each pair once: the row comes first in length order
                i, j = order[lo + r], order[lo + c]
                found[(min(i, j), max(i, j))] = round(float(scores[r, c]), 1)
    return found


def _name_evidence(tags: list[Tag]) -> dict[tuple[int, int], list[dict]]:
    """Name findings between the tags (one brand), keyed by tag id pair."""
    keys = [name_keys(tag) for tag in tags]
    # What must be equal besides: the numbers of a name; for pinyin, everything but
    # the Chinese characters (a homophone differs in its characters only).
    guards = [
        {
            "name": _DIGITS.findall(k["name"]),
            "pinyin": pinyin.CJK.sub("", k["name"]),
            "name_en": _DIGITS.findall(k["name_en"]),
        }
        for k in keys
    ]
    scores = {
        field: _similar([k[field] for k in keys], words=field == "name_en")
        for field in ("name", "pinyin", "name_en")
    }
    evidence: dict[tuple[int, int], list[dict]] = defaultdict(list)
    pairs = sorted(set().union(*scores.values()))
    for i, j in pairs:
        name_score = 0.0
        for field in ("name", "pinyin", "name_en"):
            score = scores[field].get((i, j))
            if score is None or guards[i][field] != guards[j][field]:
                continue
            if field == "name":
                name_score = score
            elif field == "pinyin" and score <= name_score:
                continue
            evidence[_pair(tags[i].pk, tags[j].pk)].append({"kind": "name", "field": field, "score": score})
    return evidence


# ---------------------------------------------------------------------------
# Members


def _sizes(tags_qs, boolean: set[int]) -> dict[int, list[tuple[str, int]]]:
    """``{tag id: [(value, people), ...]}`` of the stored results (no bitmap read): the
    "true" value of yes/no tags, every value otherwise. One query."""
    sizes: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for tag_id, counts in results.value_counts(tag_ids(tags_qs)).items():
        for value, count in counts.items():
            if count and (tag_id not in boolean or value == "true"):
                sizes[tag_id].append((value, count))
    return sizes


def _value_bound(a: list[int], b: list[int], union_floor: int) -> float:
    """An upper bound of the value agreement of ``a`` with ``b`` (value sizes)."""
    largest = max(b)
    return sum(min(x, largest) for x in a) / union_floor


def _candidates(tags: list[Tag], sizes: dict, published: set[int]) -> list[tuple[int, int]]:
    """Pairs of tags (ids) whose sizes allow an overlap of ``OVERLAP``: same kind of
    value, min/max size ≥ OVERLAP (a sliding window over tags sorted by size), at
    least one published, and for enum and number tags value sizes that allow the agreement."""
    groups: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for tag in tags:
        if tag.pk in sizes:
            total = sum(n for _v, n in sizes[tag.pk])
            groups[tag.value_type].append((total, tag.pk))
    found = []
    for value_type, members in sorted(groups.items()):
        members.sort()
        for i, (size_i, a) in enumerate(members):
            for j in range(i + 1, len(members)):
                size_j, b = members[j]
                if size_i < OVERLAP * size_j:
                    break
                if a not in published and b not in published:
                    continue
                if value_type != ValueType.BOOLEAN:
                    counts_a = [n for _v, n in sizes[a]]
                    counts_b = [n for _v, n in sizes[b]]
                    floor = max(size_i, size_j)
                    if (
                        min(_value_bound(counts_a, counts_b, floor), _value_bound(counts_b, counts_a, floor))
                        < OVERLAP
                    ):
                        continue
                found.append(_pair(a, b))
    return found


def _agreement(a: dict[str, BitMap], b: dict[str, BitMap], union: int) -> float:
    matrix = np.array(
        [[va.intersection_cardinality(vb) for _kb, vb in sorted(b.items())] for _ka, va in sorted(a.items())],
        dtype="int64",
    )
    if not union or matrix.size == 0:
        return 0.0
    return float(min(matrix.max(axis=1).sum(), matrix.max(axis=0).sum()) / union)


def _overlap_evidence(
    tags: list[Tag], sizes: dict, published: set[int], boolean: set[int]
) -> dict[tuple[int, int], list[dict]]:
    """Overlap findings between the tags (one brand), keyed by tag id pair."""
    pairs = _candidates(tags, sizes, published)
    if not pairs:
        return {}
    pks = sorted({pk for pair in pairs for pk in pair})
    bitmaps = defaultdict(dict, results.value_bitmaps(pks, true_only=boolean))
    unions: dict[int, BitMap] = {}

    def members(pk: int) -> BitMap:
        if pk not in unions:
            unions[pk] = BitMap.union(*bitmaps[pk].values()) if bitmaps.get(pk) else BitMap()
        return unions[pk]

    evidence: dict[tuple[int, int], list[dict]] = {}
    for a, b in pairs:
        ma, mb = members(a), members(b)
        if not ma or not mb:
            continue
        jaccard = ma.jaccard_index(mb)
        if jaccard < OVERLAP:
            continue
        found = {
            "kind": "overlap",
            "jaccard": round(jaccard, 4),
            "intersection": ma.intersection_cardinality(mb),
            "a_size": len(ma),
            "b_size": len(mb),
        }
        if a not in boolean:
            agreement = _agreement(bitmaps[a], bitmaps[b], ma.union_cardinality(mb))
            if agreement < OVERLAP:
                continue
            found["agreement"] = round(agreement, 4)
        evidence[(a, b)] = [found]
    return evidence


# ---------------------------------------------------------------------------
# The report


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def _definition_evidence(tags: list[Tag], hashes: dict[int, str]) -> dict[tuple[int, int], list[dict]]:
    groups: dict[tuple, list[int]] = defaultdict(list)
    for tag in tags:
        if _matchable(tag.definition):
            key = (hashes[tag.pk], tag.value_type, _dump(_canonical(tag.values or [])))
            groups[key].append(tag.pk)
    evidence = {}
    for (digest, _type, _values), pks in groups.items():
        for a, b in itertools.combinations(sorted(pks), 2):
            evidence[(a, b)] = [{"kind": "definition", "hash": digest}]
    return evidence


def _score(evidence: list[dict]) -> float:
    scores = []
    for item in evidence:
        if item["kind"] == "definition":
            scores.append(1.0)
        elif item["kind"] == "overlap":
            scores.append(item["jaccard"])
        else:
            scores.append(item["score"] / 100)
    return round(max(scores), 4)


def _target(a: Tag, b: Tag, uses: dict[int, int]) -> int:
    def rank(tag: Tag):
        return (tag.status != TagStatus.PUBLISHED, -uses.get(tag.pk, 0), tag.pk)

    return min(a, b, key=rank).pk


def build(scope: ReportScope) -> dict:
    tags_qs = scope.tags().filter(status__in=STATUSES)
    tags = brief_tags(tags_qs, "value_type", "values", "definition")
    by_id = {tag.pk: tag for tag in tags}
    published = {tag.pk for tag in tags if tag.status == TagStatus.PUBLISHED}
    boolean = {tag.pk for tag in tags if tag.value_type == ValueType.BOOLEAN}
    sizes = _sizes(tags_qs, boolean)
    hashes = {tag.pk: definition_hash(tag.definition) for tag in tags}
    by_brand: dict[int, list[Tag]] = defaultdict(list)
    for tag in tags:
        by_brand[tag.brand_id].append(tag)

    evidence: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for _brand, members in sorted(by_brand.items()):
        for found in (
            _definition_evidence(members, hashes),
            _name_evidence(members),
            _overlap_evidence(members, sizes, published, boolean),
        ):
            for pair, items in found.items():
                evidence[pair].extend(items)
    pairs = {pair: items for pair, items in evidence.items() if pair[0] in published or pair[1] in published}

    regions = tag_regions(tags_qs) if pairs else {}
    uses = period_uses({pk for pair in pairs for pk in pair}, scope)
    rows = []
    for (a, b), items in pairs.items():
        tag_a, tag_b = by_id[a], by_id[b]
        rows.append(
            {
                "a": brief(tag_a, regions),
                "b": brief(tag_b, regions),
                "evidence": items,
                "score": _score(items),
                "target": _target(tag_a, tag_b, uses),
                "fingerprint": {str(tag.pk): _fingerprint(tag, hashes[tag.pk]) for tag in (tag_a, tag_b)},
            }
        )
    rows.sort(key=lambda row: (-row["score"], row["a"]["tag"], row["b"]["tag"]))
    return {
        "meta": {
            "thresholds": {"name": NAME_SCORE, "overlap": OVERLAP, "agreement": OVERLAP},
            "period": period_json(scope),
            "pairs": len(rows),
        },
        "rows": rows,
    }
