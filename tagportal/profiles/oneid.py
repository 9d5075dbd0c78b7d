"""OneID resolution: which identities belong to one person.

Plain pandas / numpy / scipy, no ORM: :func:`resolve` takes the identity links of
new records and the identities already known, and answers which OneID each record
and each identity belongs to, which existing people were merged, and by which rule.

Model
=====

A **record** is anything that names identities together: an import row, a CRM
member card, a WeCom contact. Identities that co-occur on a record belong to one
person; identities shared by two records (the same phone, the same unionid) join
them. People are therefore the connected components of the graph

    record ── identity ── existing person (for identities already known)

computed with :func:`scipy.sparse.csgraph.connected_components`.

**Rules** say which identity types link, with a priority. Links are added rule by
rule, highest priority first, and every merge of two existing people is attributed
to the rule whose links first joined them. A rule with ``never_merges`` is *guarded*:
its links never put two different values of those types (e.g. two different phone
numbers) into one person. When a guarded link would, the identity joins only the
person ranked first (smallest OneID, else first seen) and the other people stay apart.

**Determinism**: existing people keep their OneID, a merge keeps the smallest one,
and new people get ``next_oneid, next_oneid + 1, ...`` in the order their first
record appears. **Incremental**: pass only the new records, plus the existing
identities they mention (with their OneIDs) and, for guarded rules, the identities
of the guarded types held by the people those belong to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .choices import IdentityType as T

KEY = ("type", "app", "value")
_NO_ONEID = np.iinfo(np.int64).max
_RECORD_RANK = 1 << 50
_KEY_RANK = 1 << 52


@dataclass(frozen=True)
class Rule:
    """Identity types that link the records naming them, with a priority.

    ``never_merges``: identity types two people must not differ in for this rule to
    merge them (a guarded, weaker rule such as a shared device).
    """

    name: str
    types: tuple[str, ...]
    priority: int
    never_merges: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict) -> Rule:
        return cls(
            name=str(data["name"]),
            types=tuple(data["types"]),
            priority=int(data["priority"]),
            never_merges=tuple(data.get("never_merges", ())),
        )


#: The default rules: phones, unionids and CRM member ids are strong identifiers;
#: per-platform ids link at a lower priority; a device id links last and never merges
#: two people with different phone numbers (families share tablets).
DEFAULT_RULES: tuple[Rule, ...] = (
    Rule("phone", (T.PHONE.value,), 100),
    Rule("wechat_unionid", (T.WECHAT_UNIONID.value,), 90),
    Rule("crm_member_id", (T.CRM_MEMBER_ID.value,), 80),
    Rule(
        "platform_id",
        (
            T.WECHAT_OPENID.value,
            T.WECOM_EXTERNAL_ID.value,
            T.DOUYIN_OPENID.value,
            T.XIAOHONGSHU_ID.value,
            T.JD_PIN.value,
            T.TMALL_ID.value,
        ),
        50,
    ),
    Rule("device_id", (T.DEVICE_ID.value,), 10, never_merges=(T.PHONE.value,)),
)


def check_rules(rules: Sequence[Rule]) -> None:
    """Each type in one rule at most; names unique."""
    seen: dict[str, str] = {}
    names = set()
    for rule in rules:
        if rule.name in names:
            raise ValueError(f"two OneID rules are named {rule.name!r}")
        names.add(rule.name)
        if not rule.types:
            raise ValueError(f"OneID rule {rule.name!r} names no identity type")
        for type_ in rule.types:
            if type_ in seen:
                raise ValueError(f"identity type {type_!r} is in rules {seen[type_]!r} and {rule.name!r}")
            seen[type_] = rule.name
    priority = {type_: rule.priority for rule in rules for type_ in rule.types}
    for rule in rules:
        for type_ in rule.never_merges:
            if type_ in priority and priority[type_] <= rule.priority:
                raise ValueError(
                    f"OneID rule {rule.name!r} is guarded by {type_!r}, whose rule must have a higher priority"
                )


@dataclass
class Resolution:
    #: ``record`` (as given) and its ``oneid``.
    records: pd.DataFrame
    #: ``type``, ``app``, ``value``, ``oneid`` (now), ``previous_oneid`` (``<NA>`` for new
    #: identities) and ``linked`` (named by a record, not only passed as context).
    identities: pd.DataFrame
    #: ``kept``, ``merged`` (OneIDs) and ``rule`` (name of the rule that joined them).
    merges: pd.DataFrame
    #: OneIDs of the people created, ascending.
    new_oneids: np.ndarray


def _key_codes(frame: pd.DataFrame) -> np.ndarray:
    """One int64 code per distinct (type, app, value), numbered in order of appearance."""
    combined = np.zeros(len(frame), dtype="int64")
    for column in KEY:
        codes, uniques = pd.factorize(frame[column], sort=False)
        combined = combined * (len(uniques) + 1) + codes
    codes, _uniques = pd.factorize(combined, sort=False)
    return codes.astype("int64", copy=False)


def _components(n: int, src: list[np.ndarray], dst: list[np.ndarray]) -> np.ndarray:
    if n == 0:
        return np.zeros(0, dtype="int64")
    s = np.concatenate(src) if src else np.zeros(0, dtype="int64")
    d = np.concatenate(dst) if dst else np.zeros(0, dtype="int64")
    graph = coo_matrix((np.ones(len(s), dtype="int8"), (s, d)), shape=(n, n)).tocsr()
    _count, labels = connected_components(graph, directed=False)
    return labels.astype("int64", copy=False)


def _component_min(labels: np.ndarray, values: np.ndarray, size: int) -> np.ndarray:
    out = np.full(size, _NO_ONEID, dtype="int64")
    np.minimum.at(out, labels, values)
    return out


def _guarded(
    labels: np.ndarray, u: np.ndarray, v: np.ndarray, guard_nodes: np.ndarray, rank: np.ndarray
) -> np.ndarray:
    """Which candidate links ``u — v`` of a guarded rule to accept."""
    if len(u) == 0:
        return np.zeros(0, dtype=bool)
    ncomp = int(labels.max()) + 1
    has_guard = np.zeros(ncomp, dtype=bool)
    has_guard[labels[guard_nodes]] = True
    cu, cv = labels[u], labels[v]
    comps, inverse = np.unique(np.concatenate([cu, cv]), return_inverse=True)
    a, b = inverse[: len(cu)], inverse[len(cu) :]
    group = _components(len(comps), [a], [b])  # the people each rule's identity would join
    guarded = has_guard[comps]
    count = np.bincount(group, weights=guarded.astype("float64"), minlength=int(group.max()) + 1)
    accept = count[group[a]] <= 1
    if accept.all():
        return accept
    # Conflicts: keep the first-ranked guarded person of each group and the unguarded ones.
    comp_rank = _component_min(labels, rank, ncomp)[comps]
    anchor = np.full(len(count), _NO_ONEID, dtype="int64")
    np.minimum.at(anchor, group[guarded], comp_rank[guarded])
    allowed = ~guarded | (comp_rank == anchor[group])
    return accept | (allowed[a] & allowed[b])


def resolve(
    links: pd.DataFrame,
    existing: pd.DataFrame | None = None,
    rules: Sequence[Rule] = DEFAULT_RULES,
    next_oneid: int = 1,
) -> Resolution:
    """Resolve new records into people.

    ``links``: one row per (record, identity): ``record`` (any hashable id), ``type``,
    ``app`` (empty unless per-app) and ``value`` (the keyed hash, or any value that is
    equal for equal identities). ``existing``: identities already assigned: ``type``,
    ``app``, ``value``, ``oneid``. ``next_oneid``: the first OneID free for new people.
    """
    check_rules(rules)
    links = links.loc[:, ["record", *KEY]].copy()
    links["app"] = links["app"].fillna("").astype(str)
    if existing is None or len(existing) == 0:
        existing = pd.DataFrame(
            {c: pd.Series(dtype="object") for c in KEY} | {"oneid": pd.Series(dtype="int64")}
        )
    existing = existing.loc[:, [*KEY, "oneid"]].copy()
    existing["app"] = existing["app"].fillna("").astype(str)

    rule_index = {type_: i for i, rule in enumerate(rules) for type_ in rule.types}
    unknown = sorted(set(links["type"]) - set(rule_index))
    if unknown:
        raise ValueError(f"no OneID rule covers identity types {unknown}")

    # identities (keys), records and existing people, numbered.
    both = pd.concat([links.loc[:, list(KEY)], existing.loc[:, list(KEY)]], ignore_index=True)
    key_codes = _key_codes(both)
    n_keys = int(key_codes.max()) + 1 if len(key_codes) else 0
    _unique, first_row = np.unique(key_codes, return_index=True)
    key_table = both.iloc[first_row].reset_index(drop=True)
    link_key = key_codes[: len(links)]
    known_key = key_codes[len(links) :]

    record_codes, record_values = pd.factorize(links["record"], sort=False)
    record_codes = record_codes.astype("int64")
    n_records = len(record_values)

    known = pd.DataFrame({"key": known_key, "oneid": existing["oneid"].to_numpy(dtype="int64")})
    known = known.drop_duplicates()
    if known["key"].duplicated().any():
        raise ValueError("an existing identity is assigned to two OneIDs")
    person_codes, person_oneids = pd.factorize(known["oneid"], sort=True)
    person_oneids = np.asarray(person_oneids, dtype="int64")
    n_people = len(person_oneids)

    key_base, person_base = n_records, n_records + n_keys
    n = person_base + n_people
    rank = np.concatenate(
        [
            _RECORD_RANK + np.arange(n_records, dtype="int64"),
            _KEY_RANK + np.arange(n_keys, dtype="int64"),
            person_oneids,
        ]
    )
    person_nodes = person_base + np.arange(n_people, dtype="int64")
    key_rule = key_table["type"].map(rule_index).fillna(-1).to_numpy(dtype="int64")
    link_rule = key_rule[link_key] if len(link_key) else np.zeros(0, dtype="int64")

    src = [key_base + known["key"].to_numpy(dtype="int64")]
    dst = [person_base + person_codes.astype("int64")]
    labels = _components(n, src, dst)
    phases = ["existing"]
    person_labels = [labels[person_nodes]]
    for i in sorted(range(len(rules)), key=lambda i: (-rules[i].priority, rules[i].name)):
        rule = rules[i]
        chosen = link_rule == i
        u = record_codes[chosen]
        v = key_base + link_key[chosen]
        if rule.never_merges:
            guard_keys = np.flatnonzero(key_table["type"].isin(rule.never_merges).to_numpy(dtype=bool))
            keep = _guarded(labels, u, v, key_base + guard_keys, rank)
            u, v = u[keep], v[keep]
        if len(u):
            src.append(u)
            dst.append(v)
            labels = _components(n, src, dst)
        phases.append(rule.name)
        person_labels.append(labels[person_nodes])

    ncomp = int(labels.max()) + 1 if n else 0
    comp_oneid = _component_min(labels[person_nodes], person_oneids, ncomp) if n_people else None
    if comp_oneid is None:
        comp_oneid = np.full(ncomp, _NO_ONEID, dtype="int64")
    # new people, numbered in the order of their first record
    comp_rank = _component_min(labels, rank, ncomp)
    active = np.zeros(ncomp, dtype=bool)
    active[labels[:n_records]] = True
    new_comps = np.flatnonzero(active & (comp_oneid == _NO_ONEID))
    new_comps = new_comps[np.argsort(comp_rank[new_comps], kind="stable")]
    new_oneids = next_oneid + np.arange(len(new_comps), dtype="int64")
    comp_oneid[new_comps] = new_oneids

    records = pd.DataFrame({"record": record_values, "oneid": comp_oneid[labels[:n_records]]})
    previous = pd.Series(pd.NA, index=range(n_keys), dtype="Int64")
    previous.iloc[known["key"].to_numpy()] = known["oneid"].to_numpy()
    linked = np.zeros(n_keys, dtype=bool)
    linked[link_key] = True
    identities = key_table.assign(
        oneid=comp_oneid[labels[key_base : key_base + n_keys]],
        previous_oneid=previous.to_numpy(),
        linked=linked,
    )
    identities["previous_oneid"] = identities["previous_oneid"].astype("Int64")

    merges = _merges(person_oneids, person_labels, labels[person_nodes], comp_oneid, phases)
    return Resolution(records=records, identities=identities, merges=merges, new_oneids=new_oneids)


def _merges(person_oneids, person_labels, final_labels, comp_oneid, phases) -> pd.DataFrame:
    if len(person_oneids) == 0:
        return pd.DataFrame(
            {"kept": pd.Series(dtype="int64"), "merged": pd.Series(dtype="int64"), "rule": []}
        )
    kept = comp_oneid[final_labels]
    merged = np.flatnonzero(kept != person_oneids)
    if len(merged) == 0:
        return pd.DataFrame(
            {"kept": pd.Series(dtype="int64"), "merged": pd.Series(dtype="int64"), "rule": []}
        )
    kept_node = np.searchsorted(person_oneids, kept[merged])
    stack = np.vstack(person_labels)  # phases × people
    joined = stack[:, merged] == stack[:, kept_node]
    first = joined.argmax(axis=0)
    return pd.DataFrame(
        {
            "kept": kept[merged],
            "merged": person_oneids[merged],
            "rule": [phases[p] for p in first],
        }
    ).sort_values(["kept", "merged"], ignore_index=True)
