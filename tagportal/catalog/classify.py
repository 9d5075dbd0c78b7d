"""Category (and business line) suggestions for a new tag, from its name, description and
definition, ranked against the existing tags: the nearest tags vote for their categories.

Two ways of finding the nearest tags are kept, and measured against each other by
leaving each tag of the four industry template packs out in turn
(``benchmarks/classify.py``, results in ``benchmarks/results/classify.json``):

- ``fuzzy``: rapidfuzz similarity of the Chinese characters and of their pinyin;
- ``tfidf``: TF-IDF over character n-grams (``char_wb``, 1–3) of the Chinese text and its
  pinyin, cosine similarity.

:data:`METHOD` is the one that suggested better. The functions here are pure (plain
:class:`Example` rows in, rankings out); :func:`.services.suggest_category` reads the
tags a user may view and calls them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tagportal.core import pinyin

#: The method chosen by measurement (see the module's docstring).
METHOD = "tfidf"
#: How many nearest tags vote.
NEIGHBOURS = 7
#: Definition keys that are plumbing, not meaning.
_SKIP_KEYS = frozenset({"type", "op", "value", "values", "map"})
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*|[\u3400-\u9fff]+")


@dataclass(frozen=True)
class Example:
    """One tag as the suggester reads it; ``label`` is what is predicted (a category)."""

    name: str
    description: str = ""
    definition: object = None
    name_en: str = ""
    label: object = None
    business_line: object = None
    key: object = None  # e.g. the tag's id, to leave it out and to name it


@dataclass
class Ranked:
    """A suggested label, its share of the vote and the neighbours that voted for it."""

    label: object
    score: float
    neighbours: list[tuple[object, float]]


def definition_words(definition) -> list[str]:
    """The words of a definition: its meaningful keys and string values (sources,
    attributes, event types, fields), split at underscores."""
    words: list[str] = []

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                if k not in _SKIP_KEYS:
                    words.extend(str(k).split("_"))
                walk(v, k)
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and not node.startswith("@"):
            words.extend(w for w in re.split(r"[_\s./]+", node) if w)

    walk(definition)
    return [w.lower() for w in words if _WORD.fullmatch(w) or any(ch.isalpha() for ch in w)]


def texts(example: Example) -> tuple[str, str]:
    """The Chinese-and-English text of a tag (name weighted twice) and its pinyin."""
    chinese = " ".join(p for p in (example.name, example.name, example.description) if p)
    other = " ".join([example.name_en or "", *definition_words(example.definition)]).lower()
    return f"{chinese} {other}".strip(), f"{pinyin.readings(chinese)} {other}".strip()


# ---------------------------------------------------------------------------
# Similarity of a query to every example


def _fuzzy_similarity(train: Sequence[tuple], queries: Sequence[tuple]) -> np.ndarray:
    from rapidfuzz import fuzz, process

    def column(rows, i):
        return [row[i] for row in rows]

    chars = process.cdist(column(queries, 0), column(train, 0), scorer=fuzz.token_set_ratio, workers=1)
    spelled = process.cdist(column(queries, 1), column(train, 1), scorer=fuzz.token_set_ratio, workers=1)
    names = process.cdist(column(queries, 2), column(train, 2), scorer=fuzz.partial_ratio, workers=1)
    return (0.4 * chars + 0.4 * spelled + 0.2 * names) / 100.0


def _tfidf_similarity(train: Sequence[tuple], queries: Sequence[tuple]) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True)
    matrix = vectorizer.fit_transform([f"{row[0]} | {row[1]}" for row in train])
    return cosine_similarity(vectorizer.transform([f"{row[0]} | {row[1]}" for row in queries]), matrix)


#: ``(train rows, query rows) -> similarity matrix``; a row is :func:`prepared`'s.
SIMILARITIES: dict[str, Callable[[Sequence[tuple], Sequence[tuple]], np.ndarray]] = {
    "fuzzy": _fuzzy_similarity,
    "tfidf": _tfidf_similarity,
}


def prepared(example: Example) -> tuple[str, str, str]:
    """What the similarities read of an example: its text, its pinyin, its name."""
    text, spelled = texts(example)
    return text, spelled, example.name or ""


def _vote(similarity: np.ndarray, train: Sequence[Example], attribute: str, k: int) -> list[Ranked]:
    order = np.argsort(-similarity, kind="stable")[:k]
    votes: dict[object, float] = defaultdict(float)
    voters: dict[object, list[tuple[object, float]]] = defaultdict(list)
    for index in order:
        example = train[int(index)]
        weight = float(similarity[index])
        label = getattr(example, attribute)
        votes[label] += weight + 1e-6  # a neighbour with no overlap still votes a little
        voters[label].append((example.key, weight))
    total = sum(votes.values()) or 1.0
    ranked = sorted(votes.items(), key=lambda item: -item[1])
    return [Ranked(label, round(score / total, 4), voters[label]) for label, score in ranked]


def rank(
    train: Sequence[Example],
    query: Example,
    *,
    method: str = METHOD,
    attribute: str = "label",
    k: int = NEIGHBOURS,
) -> list[Ranked]:
    """Labels (``attribute`` of the examples: ``label`` or ``business_line``) ranked for
    ``query`` by the weighted vote of its ``k`` nearest examples, best first."""
    if not train:
        return []
    rows = [prepared(e) for e in train]
    similarity = SIMILARITIES[method](rows, [prepared(query)])[0]
    return _vote(similarity, train, attribute, k)


# ---------------------------------------------------------------------------
# Measurement


def most_frequent(train: Sequence[Example], attribute: str = "label") -> list[object]:
    """The trivial baseline: labels by how often they occur, most frequent first."""
    counts: dict[object, int] = defaultdict(int)
    for example in train:
        counts[getattr(example, attribute)] += 1
    return [label for label, _n in sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))]


def leave_one_out(
    examples: Sequence[Example], method: str, *, attribute: str = "label", k: int = NEIGHBOURS
) -> dict[str, float]:
    """Top-1 and top-3 accuracy of ``method`` ("baseline" for the most frequent label)
    when each example is suggested from all the others."""
    top1 = top3 = 0
    rows = [prepared(e) for e in examples] if method != "baseline" else []
    for index, example in enumerate(examples):
        train = [e for i, e in enumerate(examples) if i != index]
        if method == "baseline":
            labels = most_frequent(train, attribute)
        else:
            train_rows = [r for i, r in enumerate(rows) if i != index]
            similarity = SIMILARITIES[method](train_rows, [rows[index]])[0]
            labels = [r.label for r in _vote(similarity, train, attribute, k)]
        truth = getattr(example, attribute)
        top1 += bool(labels[:1] == [truth])
        top3 += truth in labels[:3]
    n = len(examples) or 1
    return {"top1": round(top1 / n, 4), "top3": round(top3 / n, 4), "n": len(examples)}


def pack_examples(pack, *, qualify: bool = False) -> list[Example]:
    """The tags of an industry template pack as examples labelled with their category
    path (``pack/path`` with ``qualify``) and the pack's key as their business line."""
    return [
        Example(
            name=tag.get("zh") or tag["name"],
            description=tag.get("description", ""),
            definition=tag.get("definition"),
            name_en=tag.get("en", ""),
            label=f"{pack.key}/{tag['category']}" if qualify else tag["category"],
            business_line=pack.key,
            key=tag["name"],
        )
        for tag in pack.tags
    ]
