"""Lookalike audiences: from a seed audience, a model on people's tag values scores
everyone else of the brand, and the best-scoring people become a new audience.

- :func:`features` turns the brand's computed tags into a sparse matrix, one row per
  person: a 0/1 column per value bitmap (boolean values, enum values, number buckets)
  and, for number tags, the person's rank among the tag's holders (0..1) with a
  "missing" column for people without a number. Built straight from the bitmaps,
  one vectorised step per value bitmap, never a loop over people.
- :func:`fit` learns seed members against everyone else. This is positive-unlabeled
  learning: "everyone else" holds the people we are looking for, so a sample of them
  is used as negatives (up to ``max(5 × seed, 10,000)``, at most ``max_negatives``)
  and a class-balanced logistic regression ranks people by how much they resemble the
  seed. It is validated on a stratified 20 % hold-out (ROC AUC and average precision,
  counting the unlabeled as negatives, so both understate the real quality), then
  refitted on all the sampled people. The largest coefficients are kept for display.
- :func:`score` gives every person outside the seed a score in 0..1.
- :func:`create_lookalike` saves the best ``size`` people, or everyone scoring at
  least ``threshold``, as a lookalike :class:`~.models.Audience` with its first
  snapshot. **The members are the expansion only: seed members are never in it**
  (combine it with the seed in an expression audience to target both).

A lookalike's members come from the model, not from an expression: its expression is
empty and it is not refreshed when tags are recomputed (``refresh_on_recompute`` is
off); make a new one to use newer tag results. Everything is deterministic for a given
``random_state``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from pyroaring import BitMap
from scipy import sparse

from tagportal.core.permissions import may, may_add_into
from tagportal.engine import bitmaps as bm
from tagportal.rules.definitions import RuleValidationError

from . import expressions as ex
from . import services
from .choices import AudienceKind, RefreshTrigger
from .members import select
from .models import Audience
from .store import STORE, BitmapStore, NoResult

#: A seed smaller than this is refused: too few people to learn from.
MIN_SEED = 20
#: At least this many people must be outside the seed (to sample negatives from).
MIN_OTHERS = 20
#: Negatives sampled: ``NEGATIVES_PER_POSITIVE`` per seed member, at least ``MIN_NEGATIVES``.
NEGATIVES_PER_POSITIVE = 5
MIN_NEGATIVES = 10_000
HOLDOUT = 0.2
VALIDATION = gettext_noop("hold-out of one person in five")
TOP_FEATURES = 10

RANK = "#rank"
MISSING = "#missing"


@dataclass
class Features:
    """The feature matrix of some people: rows follow ``oneids`` (ascending)."""

    oneids: np.ndarray
    X: sparse.csr_matrix
    names: list[str]
    tag_versions: dict[str, int | None] = field(default_factory=dict)
    tag_names: dict[str, str] = field(default_factory=dict)

    def __iter__(self):  # ``oneids, X, names = features(...)``
        return iter((self.oneids, self.X, self.names))


@dataclass
class LookalikeModel:
    """A fitted lookalike model and what it was fitted on."""

    estimator: object
    feature_names: list[str]
    seed: BitMap
    positives: int
    negatives: int
    random_state: int
    metrics: dict
    tag_versions: dict[str, int | None]
    top_features: list[dict]


def _computed_results(brand, exclude_codes, store: BitmapStore):
    """The current results of the brand's computed tags (tags never computed are left out)."""
    tags = {code: info for code, info in ex.brand_tags(brand).items() if code not in set(exclude_codes)}
    while tags:
        try:
            return tags, store.results(brand.pk, tags)
        except NoResult as exc:
            tags = {code: info for code, info in tags.items() if code not in set(exc.codes)}
    return {}, {}


def _positions(oneids: np.ndarray):
    """A function giving, for some OneIDs, the rows of those among ``oneids`` (sorted)
    and a mask of which were found. A lookup table when OneIDs are dense enough (the
    usual case: a gather), else a binary search."""
    n = len(oneids)
    if n and oneids[-1] < 4 * n + (1 << 20):
        table = np.full(int(oneids[-1]) + 1, -1, dtype=np.int64)
        table[oneids] = np.arange(n)

        def find(ids: np.ndarray):
            found = np.full(len(ids), -1, dtype=np.int64)
            small = ids < len(table)
            found[small] = table[ids[small]]
            inside = found >= 0
            return found[inside], inside

        return find

    def search(ids: np.ndarray):
        at = np.searchsorted(oneids, ids)
        inside = at < n
        inside[inside] = oneids[at[inside]] == ids[inside]
        return at[inside], inside

    return search


def _mid_ranks(numbers: np.ndarray) -> np.ndarray:
    """Each number's mid-rank in 0..1 among ``numbers`` (sorted; ties share a rank)."""
    starts = np.flatnonzero(np.r_[True, numbers[1:] != numbers[:-1]])
    lengths = np.diff(np.r_[starts, len(numbers)])
    return np.repeat(starts + lengths / 2.0, lengths) / len(numbers)


def features(
    brand, people: BitMap | None = None, exclude_codes=(), *, store: BitmapStore = STORE
) -> Features:
    """The feature matrix of ``people`` (default: the brand's people) from the brand's
    computed tags. Unpacks as ``oneids, X, feature_names``.

    Columns, tag by tag (codes in order): ``code=value`` (0/1) for each value bitmap,
    then for number tags ``code#rank`` (the person's mid-rank among the tag's holders,
    in 0..1; 0 when missing) and ``code#missing`` (1 when the person has no number).
    OneIDs are mapped to rows by a lookup table (or a binary search when they are
    sparse): vectorised, one step per value bitmap, never one per person.
    :class:`~django.core.exceptions.ValidationError` if the brand has no computed tag.
    """
    tags, results = _computed_results(brand, exclude_codes, store)
    if not results:
        raise ValidationError(
            _("The brand “%(brand)s” has no computed tags to learn from yet.") % {"brand": brand},
            code="no_tags",
        )
    if people is None:
        people = store.people(brand.pk)
    oneids = bm.bitmap_ids(people)
    n = len(oneids)
    position = _positions(oneids)
    rows, cols, data, names = [], [], [], []

    def add(at: np.ndarray, values, name: str) -> None:
        column = len(names)
        names.append(name)
        if not len(at):
            return
        rows.append(at)
        cols.append(np.full(len(at), column, dtype=np.int64))
        data.append(np.ones(len(at)) if values is None else np.asarray(values, dtype="float64"))

    for code in sorted(results):
        result = results[code]
        for value in sorted(result.values):
            at, _inside = position(bm.bitmap_ids(result.values[value] & people))
            add(at, None, f"{code}={value}")
        if result.value_type != "number":
            continue
        has = np.zeros(n, dtype=bool)
        numbers, ids = result.sorted_numbers, result.ids_by_value
        if numbers is None or not len(numbers):
            add(np.array([], dtype=np.int64), None, f"{code}{RANK}")
        else:
            at, inside = position(ids)
            has[at] = True
            add(at, _mid_ranks(numbers)[inside], f"{code}{RANK}")
        add(np.flatnonzero(~has), None, f"{code}{MISSING}")

    if rows:
        X = sparse.csr_matrix(
            (np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, len(names))
        )
    else:
        X = sparse.csr_matrix((n, len(names)))
    return Features(
        oneids=oneids,
        X=X,
        names=names,
        tag_versions={code: results[code].version for code in sorted(results)},
        tag_names={code: tags[code].name for code in results},
    )


def _align(data: Features, names: list[str]) -> sparse.csr_matrix:
    """``data.X`` with the columns ``names`` (in that order; a column gone is all zeros)."""
    if data.names == names:
        return data.X
    current = {name: i for i, name in enumerate(data.names)}
    pairs = [(current[name], j) for j, name in enumerate(names) if name in current]
    src = np.array([i for i, _j in pairs], dtype=np.int64)
    dst = np.array([j for _i, j in pairs], dtype=np.int64)
    pick = sparse.csr_matrix((np.ones(len(pairs)), (src, dst)), shape=(len(data.names), len(names)))
    return (data.X @ pick).tocsr()


def _describe(name: str, coefficient: float, tag_names: dict[str, str]) -> dict:
    if name.endswith(RANK) or name.endswith(MISSING):
        kind = "rank" if name.endswith(RANK) else "missing"
        code, value = name[: -len(RANK if kind == "rank" else MISSING)], None
    else:
        code, value = name.split("=", 1)
        kind = "value"
    return {
        "feature": name,
        "tag": code,
        "tag_name": tag_names.get(code, code),
        "kind": kind,
        "value": value,
        "coefficient": round(float(coefficient), 4),
    }


def fit(
    brand,
    seed_members: BitMap,
    *,
    random_state: int = 0,
    max_negatives: int = 200_000,
    exclude_codes=(),
    data: Features | None = None,
    store: BitmapStore = STORE,
) -> LookalikeModel:
    """Fit a model telling ``seed_members`` from the brand's other people.

    ``data`` (from :func:`features`, all the brand's people) saves building the matrix
    twice. :class:`~django.core.exceptions.ValidationError` for a seed of fewer than
    ``MIN_SEED`` people of the brand, a seed leaving fewer than ``MIN_OTHERS`` people
    out, or a brand without computed tags.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    if data is None:
        data = features(brand, exclude_codes=exclude_codes, store=store)
    oneids = data.oneids
    is_seed = np.isin(oneids, bm.bitmap_ids(seed_members), assume_unique=True)
    positives = np.flatnonzero(is_seed)
    others = np.flatnonzero(~is_seed)
    if len(positives) < MIN_SEED:
        raise ValidationError(
            _("The seed has %(n)s people of the brand; a lookalike needs at least %(min)s to learn from.")
            % {"n": len(positives), "min": MIN_SEED},
            code="seed_too_small",
        )
    if len(others) < MIN_OTHERS:
        raise ValidationError(
            _(
                "The seed holds (nearly) everyone of the brand: only %(n)s people are left to look for, "
                "at least %(min)s are needed."
            )
            % {"n": len(others), "min": MIN_OTHERS},
            code="seed_too_large",
        )
    rng = np.random.default_rng(random_state)
    n_negatives = min(len(others), max_negatives, max(NEGATIVES_PER_POSITIVE * len(positives), MIN_NEGATIVES))
    negatives = np.sort(rng.choice(others, size=n_negatives, replace=False))
    rows = np.concatenate([positives, negatives])
    y = np.concatenate([np.ones(len(positives), dtype=np.int8), np.zeros(len(negatives), dtype=np.int8)])
    X = data.X[rows]

    def estimator():
        return LogisticRegression(
            class_weight="balanced", max_iter=1000, solver="liblinear", random_state=random_state
        )

    train, test = train_test_split(
        np.arange(len(y)), test_size=HOLDOUT, stratify=y, random_state=random_state
    )
    held_out = estimator().fit(X[train], y[train]).predict_proba(X[test])[:, 1]
    auc = float(roc_auc_score(y[test], held_out))
    average_precision = float(average_precision_score(y[test], held_out))

    model = estimator().fit(X, y)  # all the sampled people, once validated
    coefficients = model.coef_[0]
    order = np.argsort(-np.abs(coefficients), kind="stable")[:TOP_FEATURES]
    top = [_describe(data.names[i], coefficients[i], data.tag_names) for i in order if coefficients[i] != 0]
    metrics = {
        "auc": round(auc, 4),
        "average_precision": round(average_precision, 4),
        "positives": len(positives),
        "negatives": len(negatives),
        "holdout_positives": int(y[test].sum()),
        "holdout_negatives": int(len(test) - y[test].sum()),
        "validation": VALIDATION,
        "top_features": top,
    }
    return LookalikeModel(
        estimator=model,
        feature_names=list(data.names),
        seed=bm.bitmap(oneids[positives]),
        positives=len(positives),
        negatives=len(negatives),
        random_state=random_state,
        metrics=metrics,
        tag_versions=dict(data.tag_versions),
        top_features=top,
    )


def score(
    model: LookalikeModel, brand, *, data: Features | None = None, store: BitmapStore = STORE
) -> tuple[np.ndarray, np.ndarray]:
    """``(oneids, scores)`` of the brand's people outside the seed (OneIDs ascending,
    scores in 0..1: how much each resembles the seed)."""
    if data is None:
        data = features(brand, store.people(brand.pk) - model.seed, store=store)
    keep = ~np.isin(data.oneids, bm.bitmap_ids(model.seed), assume_unique=True)
    X = _align(data, model.feature_names)[np.flatnonzero(keep)]
    scores = model.estimator.predict_proba(X)[:, 1] if X.shape[0] else np.array([], dtype="float64")
    return data.oneids[keep], scores


def seed_members_of(seed: Audience, store: BitmapStore = STORE) -> BitMap:
    """The seed's members: its latest snapshot, else (never refreshed) its expression
    evaluated now."""
    if seed.snapshots.exists():
        return services.members(seed)
    if not seed.expression:
        return BitMap()
    try:
        return select(seed.brand, seed.expression, store=store).members
    except (RuleValidationError, NoResult) as exc:
        raise ValidationError(
            _("The seed's members cannot be computed: %(error)s") % {"error": exc}, code="seed"
        ) from exc


def _check_choice(size, threshold) -> None:
    if (size is None) == (threshold is None):
        raise ValidationError(
            _("Choose either the number of people to add or a score threshold, not both."),
            code="size_or_threshold",
        )
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValidationError(
            _("The number of people to add must be a whole number of at least 1."), code="size"
        )
    if threshold is not None and not (isinstance(threshold, int | float) and 0 < threshold < 1):
        raise ValidationError(
            _("The score threshold must be between 0 and 1 (both excluded)."), code="threshold"
        )


def create_lookalike(
    user,
    seed: Audience,
    *,
    size: int | None = None,
    threshold: float | None = None,
    name: str = "",
    random_state: int = 0,
    store: BitmapStore = STORE,
) -> Audience:
    """A lookalike audience of ``seed``: the ``size`` best-scoring people outside the
    seed, or everyone outside it scoring at least ``threshold`` (exactly one of them).

    The members are the expansion only (seed members excluded). The model's hold-out
    metrics and top features go into ``model_metrics``; the first snapshot is stored.
    :class:`~django.core.exceptions.PermissionDenied` unless ``user`` may view the seed
    and add audiences into its brand; :class:`~django.core.exceptions.ValidationError`
    for a bad choice of size or threshold, or a seed the model cannot learn from.
    """
    if not (may(user, seed, "view") and may_add_into(user, Audience, seed.brand)):
        raise PermissionDenied(_("You may not create audiences from this seed in its brand."))
    _check_choice(size, threshold)
    started = time.perf_counter()
    brand = seed.brand
    people = store.people(brand.pk)
    seed_set = seed_members_of(seed, store) & people
    data = features(brand, people, store=store)
    model = fit(brand, seed_set, random_state=random_state, data=data, store=store)
    oneids, scores = score(model, brand, data=data, store=store)
    if size is not None:
        if size > len(oneids):
            raise ValidationError(
                _("Only %(n)s people of the brand are outside the seed; choose at most that many.")
                % {"n": len(oneids)},
                code="size_too_large",
            )
        order = np.lexsort((oneids, -scores))[:size]  # best first, ties by OneID
        picked = oneids[order]
        used = float(scores[order[-1]])
    else:
        picked = oneids[scores >= threshold]
        used = float(threshold)
        if not len(picked):
            raise ValidationError(
                _("Nobody outside the seed scores %(t)s or more (the best score is %(best).3f); lower it.")
                % {"t": threshold, "best": float(scores.max()) if len(scores) else 0.0},
                code="threshold_too_high",
            )
    members = bm.bitmap(picked)
    took_ms = (time.perf_counter() - started) * 1000
    now = timezone.now()
    params = {
        "size": size,
        "threshold": threshold,
        "random_state": random_state,
        "negatives": model.negatives,
        "features": model.feature_names,
    }
    params = {key: value for key, value in params.items() if value is not None}
    metrics = {**model.metrics, "score_threshold_used": round(used, 6)}
    with transaction.atomic():
        audience = Audience(
            name=(name or _("%(seed)s lookalike (%(size)s)") % {"seed": seed.name, "size": len(members)})[
                :200
            ],
            business_line=seed.business_line,
            brand=brand,
            kind=AudienceKind.LOOKALIKE,
            owner=user,
            seed=seed,
            expression={},
            expression_text="",
            pinned_versions=model.tag_versions,
            refresh_on_recompute=False,
            model_params=params,
            model_metrics=metrics,
            size=len(members),
            population=len(people),
            last_calculated_at=now,
        )
        audience.full_clean()
        audience._change_reason = _("Lookalike of “%(seed)s”") % {"seed": seed.name}
        audience._history_user = user
        audience.save()
        services.take_snapshot(
            audience,
            members,
            len(people),
            trigger=RefreshTrigger.CREATED,
            tag_versions=model.tag_versions,
            expression={},
            duration_ms=took_ms,
            at=now,
        )
    return audience
