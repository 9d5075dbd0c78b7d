"""OneID resolution: which identities belong to one person.

Plain pandas / numpy / scipy, no ORM: :func:`resolve` takes records (the identities
each names) and the identities already known with their OneIDs, and answers which
OneID each record and each identity belongs to, which existing people were merged, and
by which rule.

Model
=====

A **record** is anything that names identities together: an import row, a CRM
member card, a WeCom contact, an event. **Rules** say which identity types link, with
a priority (highest first; it only says which rule a merge is attributed to). A rule
with ``never_merges`` is *guarded* (the default: device ids, guarded by phones); the
others are *unguarded*. The people are a function of the **set** of records, never of
their order or of how they were split into imports:

1. **Unguarded links.** A record's identities of unguarded types are one person, and
   records sharing such an identity are one person (connected components). A record
   naming no unguarded identity links its guarded identities the same way (a record
   naming only a device is that device's; one naming two devices links them).
2. **Guarded links**, rule by rule (priority, then name). A guarded identity *g* named
   on records of several people may join them. The identities of each guarded rule are
   taken one at a time in a canonical order — by ``(type, app, value)``, the keyed hash
   for hashed values, so never by arrival. For *g*: its group starts as the person
   already holding *g* (step 1, or an earlier *g*), and each other person *g*'s
   records belong to is considered in turn — those holding values of the
   ``never_merges`` types first, ordered by their smallest such value, then those
   holding none. A person joins the group when, for each ``never_merges`` type, its
   values and the group's are the same or one holds all of the other's (in practice:
   the same phone, or either has none); the others stay apart. So a device shared by
   two people with different phones joins the first of them (and every person without
   a phone it touches), never both; the second keeps its own records and devices.
3. Every identity named by a record belongs to exactly one person; every person holds
   at least one identity.

Regions that cannot hold two different guard values (the common case) are decided in
one vectorised pass; only the people connected through conflicting guarded
identities are decided one identity at a time.

**OneIDs.** Existing people keep their OneID: each OneID, smallest first, goes to the
person now holding most of its identities that no smaller OneID took; a OneID left
without one is *merged* into the person holding most of its identities (attributed to
the highest-priority rule whose links joined the two). A person that gets no existing
OneID gets a new one: ``next_oneid, next_oneid + 1, ...`` in the order of its first
record. The services pass each identity with the OneID of the person it came with
before any merge still in force, so a merge that a later record forbids (a person
without a phone joined by a device who later shows another phone) comes out as that
person keeping its own OneID again: the merge is undone.

**Incremental**: pass the new records plus, as records, the stored links of every
person connected to them (``tagportal.profiles.services`` keeps each record as pairs of
identities, :class:`~tagportal.profiles.models.IdentityLink`, and re-resolves the
connected region). The result equals resolving every record at once. Existing
identities that no record names are treated as one record per person with one of its
named identities (their person as it stands: data stored before links were kept).
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


def _canonical(key_table: pd.DataFrame, keys) -> list[int]:
    """``keys`` (codes into ``key_table``) sorted by (type, app, value): an order that
    does not depend on the order of the input."""
    keys = list(keys)
    table = key_table.iloc[keys]
    tuples = zip(table["type"].astype(str), table["app"].astype(str), table["value"].astype(str), strict=True)
    return [k for _t, k in sorted(zip(tuples, keys, strict=True))]


class _Groups:
    """Union-find over the people of a conflict region, with their guard values."""

    def __init__(self, values: dict[int, frozenset], key_type: dict[int, str], key_order: dict[int, int]):
        self.parent: dict[int, int] = {}
        self.values = values
        self.key_type = key_type
        self.key_order = key_order

    def find(self, c: int) -> int:
        root = c
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while c != root:
            self.parent[c], c = root, self.parent.get(c, c)
        return root

    def order(self, c: int) -> tuple:
        values = self.values.get(c, frozenset())
        # people holding guard values first, by their smallest one; then the others
        return (0, min(self.key_order[k] for k in values)) if values else (1, 0)

    def compatible(self, a: frozenset, b: frozenset) -> bool:
        for type_ in {self.key_type[k] for k in a | b}:
            at = {k for k in a if self.key_type[k] == type_}
            bt = {k for k in b if self.key_type[k] == type_}
            if not (at <= bt or bt <= at):
                return False
        return True

    def join(self, a: int, b: int) -> None:
        self.parent[b] = a
        self.values[a] = self.values.get(a, frozenset()) | self.values.pop(b, frozenset())


def _guarded(
    labels: np.ndarray,
    g: np.ndarray,
    cg: np.ndarray,
    cr: np.ndarray,
    guard_keys: np.ndarray,
    guard_labels: np.ndarray,
    key_table: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray]:
    """The people a guarded rule joins, as pairs of component labels.

    ``g``: guarded identities (key codes) named on records of people ``cr``; ``cg``: the
    person holding ``g`` itself (``cg != cr``). A *region* is a set of people connected by
    these candidate links; where a region holds at most one person with guard values no
    link can join two different values, and every link is taken (vectorised). The other
    regions are decided identity by identity in canonical order (see the module docstring).
    """
    if len(g) == 0:
        return np.zeros(0, dtype="int64"), np.zeros(0, dtype="int64")
    comps, inverse = np.unique(np.concatenate([cg, cr]), return_inverse=True)
    a, b = inverse[: len(cg)], inverse[len(cg) :]
    region = _components(len(comps), [a], [b])
    guarded_comp = np.isin(comps, guard_labels)
    count = np.bincount(region, weights=guarded_comp.astype("float64"), minlength=int(region.max()) + 1)
    easy = count[region[a]] <= 1
    src, dst = [cg[easy]], [cr[easy]]
    if not easy.all():
        hard = ~easy
        hg, hcg, hcr = g[hard], cg[hard], cr[hard]
        involved = np.unique(np.concatenate([hcg, hcr]))
        held = np.isin(guard_labels, involved)
        values: dict[int, set] = {}
        for key, comp in zip(guard_keys[held].tolist(), guard_labels[held].tolist(), strict=True):
            values.setdefault(comp, set()).add(key)
        order = {k: i for i, k in enumerate(_canonical(key_table, guard_keys[held]))}
        key_type = dict(zip(order, key_table["type"].iloc[list(order)].astype(str), strict=True))
        groups = _Groups({c: frozenset(v) for c, v in values.items()}, key_type, order)
        touches: dict[int, tuple[int, list[int]]] = {}
        for key, own, other in zip(hg.tolist(), hcg.tolist(), hcr.tolist(), strict=True):
            touches.setdefault(key, (own, []))[1].append(other)
        for key in _canonical(key_table, touches):
            own, others = touches[key]
            root = groups.find(own)
            found = {groups.find(c) for c in others} - {root}
            for c in sorted(found, key=lambda c: (groups.order(c), c)):
                if groups.compatible(groups.values.get(root, frozenset()), groups.values.get(c, frozenset())):
                    groups.join(root, c)
                    src.append(np.array([root]))
                    dst.append(np.array([c]))
    return np.concatenate(src), np.concatenate(dst)


def _relabel(labels: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    if len(src) == 0:
        return labels
    ncomp = int(labels.max()) + 1
    return _components(ncomp, [src], [dst])[labels]


def resolve(
    links: pd.DataFrame,
    existing: pd.DataFrame | None = None,
    rules: Sequence[Rule] = DEFAULT_RULES,
    next_oneid: int = 1,
) -> Resolution:
    """Resolve records into people.

    ``links``: one row per (record, identity): ``record`` (any hashable id), ``type``,
    ``app`` (empty unless per-app) and ``value`` (the keyed hash, or any value that is
    equal for equal identities). ``existing``: identities already assigned: ``type``,
    ``app``, ``value``, ``oneid``. ``next_oneid``: the first OneID free for new people.
    """
    check_rules(rules)
    links = links.loc[:, ["record", *KEY]].copy()
    links["app"] = links["app"].fillna("").astype(str)
    existing = _frame(existing)

    rule_index = {type_: i for i, rule in enumerate(rules) for type_ in rule.types}
    unknown = sorted(set(links["type"]) - set(rule_index))
    if unknown:
        raise ValueError(f"no OneID rule covers identity types {unknown}")

    # identities (keys) and records, numbered
    both = pd.concat([links.loc[:, list(KEY)], existing.loc[:, list(KEY)]], ignore_index=True)
    key_codes = _key_codes(both)
    n_keys = int(key_codes.max()) + 1 if len(key_codes) else 0
    _unique, first_row = np.unique(key_codes, return_index=True)
    key_table = both.iloc[first_row].reset_index(drop=True)
    link_key = key_codes[: len(links)]
    known = pd.DataFrame({"key": key_codes[len(links) :], "oneid": existing["oneid"].to_numpy(dtype="int64")})
    known = known.drop_duplicates()
    if known["key"].duplicated().any():
        raise ValueError("an existing identity is assigned to two OneIDs")

    record_codes, record_values = pd.factorize(links["record"], sort=False)
    link_rec = record_codes.astype("int64")
    n_records = len(record_values)
    linked = np.zeros(n_keys, dtype=bool)
    linked[link_key] = True

    # existing identities no record names: one record per person, with one of its named identities
    unnamed = known[~linked[known["key"].to_numpy()]]
    if len(unnamed):
        named = known[linked[known["key"].to_numpy()]]
        anchor = named[named["oneid"].isin(unnamed["oneid"])].drop_duplicates("oneid")
        pseudo = pd.concat([unnamed, anchor], ignore_index=True)
        codes, _people = pd.factorize(pseudo["oneid"], sort=True)
        link_rec = np.concatenate([link_rec, n_records + codes.astype("int64")])
        link_key = np.concatenate([link_key, pseudo["key"].to_numpy(dtype="int64")])
        n_all_records = n_records + len(_people)
    else:
        n_all_records = n_records

    key_rule = key_table["type"].map(rule_index).fillna(-1).to_numpy(dtype="int64")
    is_guarded = np.array([bool(rule.never_merges) for rule in rules] + [False])
    key_guarded = is_guarded[key_rule]
    link_guarded = key_guarded[link_key]
    has_strong = np.zeros(n_all_records, dtype=bool)
    has_strong[link_rec[~link_guarded]] = True
    # guarded identities on a record naming no unguarded one link as if unguarded
    strong = ~link_guarded | ~has_strong[link_rec]
    key_base = n_all_records
    n = key_base + n_keys
    src, dst = [link_rec[strong]], [key_base + link_key[strong]]
    labels = _components(n, src, dst)

    order = sorted(range(len(rules)), key=lambda i: (-rules[i].priority, rules[i].name))
    guarded_labels = []
    for i in order:
        rule = rules[i]
        if not rule.never_merges:
            continue
        chosen = link_guarded & has_strong[link_rec] & (key_rule[link_key] == i)
        g, r = link_key[chosen], link_rec[chosen]
        cg, cr = labels[key_base + g], labels[r]
        differ = cg != cr
        guard_keys = np.flatnonzero(key_table["type"].isin(rule.never_merges).to_numpy(dtype=bool))
        a, b = _guarded(
            labels, g[differ], cg[differ], cr[differ], guard_keys, labels[key_base + guard_keys], key_table
        )
        labels = _relabel(labels, a, b)
        guarded_labels.append((rule.name, labels))

    ncomp = int(labels.max()) + 1 if n else 0
    key_label = labels[key_base : key_base + n_keys]
    comp_rank = np.full(ncomp, _NO_ONEID, dtype="int64")
    np.minimum.at(comp_rank, labels[:n_all_records], np.arange(n_all_records, dtype="int64"))
    comp_oneid, absorbed = _assign(known, key_label, comp_rank, ncomp)
    new_comps = np.flatnonzero(comp_oneid == _NO_ONEID)
    new_comps = new_comps[np.argsort(comp_rank[new_comps], kind="stable")]
    new_oneids = next_oneid + np.arange(len(new_comps), dtype="int64")
    comp_oneid[new_comps] = new_oneids

    records = pd.DataFrame({"record": record_values, "oneid": comp_oneid[labels[:n_records]]})
    previous = np.full(n_keys, -1, dtype="int64")
    previous[known["key"].to_numpy()] = known["oneid"].to_numpy()
    identities = key_table.assign(
        oneid=comp_oneid[key_label],
        previous_oneid=pd.array(np.where(previous < 0, None, previous), dtype="Int64"),
        linked=linked,
    )
    graph = (link_rec, link_key, strong, key_base, n)
    merges = _merges(
        absorbed, known, key_label, comp_oneid, rules, order, key_rule[link_key], graph, guarded_labels
    )
    return Resolution(records=records, identities=identities, merges=merges, new_oneids=new_oneids)


def _frame(frame: pd.DataFrame | None) -> pd.DataFrame:
    if frame is None or len(frame) == 0:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in KEY} | {"oneid": pd.Series(dtype="int64")})
    frame = frame.loc[:, [*KEY, "oneid"]].copy()
    frame["app"] = frame["app"].fillna("").astype(str)
    return frame


def _assign(known: pd.DataFrame, key_label: np.ndarray, comp_rank: np.ndarray, ncomp: int):
    """Existing OneIDs to people: each, smallest first, to the person holding most of
    its identities that no smaller OneID took; a OneID left without one is merged
    into the person holding most of its identities."""
    comp_oneid = np.full(ncomp, _NO_ONEID, dtype="int64")
    if len(known) == 0:
        return comp_oneid, pd.DataFrame({"oneid": [], "comp": []}, dtype="int64")
    held = pd.DataFrame({"oneid": known["oneid"].to_numpy(), "comp": key_label[known["key"].to_numpy()]})
    held = held.groupby(["oneid", "comp"], sort=False).size().rename("n").reset_index()
    held["rank"] = comp_rank[held["comp"].to_numpy()]
    held = held.sort_values(["oneid", "n", "rank"], ascending=[True, False, True], ignore_index=True)
    top = held.drop_duplicates("oneid")
    if top["comp"].is_unique:
        comp_oneid[top["comp"].to_numpy()] = top["oneid"].to_numpy()
        return comp_oneid, pd.DataFrame({"oneid": [], "comp": []}, dtype="int64")
    absorbed = []
    for oneid_, group in held.groupby("oneid", sort=True):
        comps = group["comp"].tolist()
        free = [c for c in comps if comp_oneid[c] == _NO_ONEID]
        if free:
            comp_oneid[free[0]] = oneid_
        else:
            absorbed.append((oneid_, comps[0]))
    return comp_oneid, pd.DataFrame(absorbed, columns=["oneid", "comp"], dtype="int64")


def _merges(absorbed, known, key_label, comp_oneid, rules, order, link_rule, graph, guarded):
    """``kept``, ``merged``, ``rule`` for the OneIDs merged into another: the rule whose
    links first joined them (labels after each rule, highest priority first)."""
    empty = pd.DataFrame({"kept": pd.Series(dtype="int64"), "merged": pd.Series(dtype="int64"), "rule": []})
    if len(absorbed) == 0:
        return empty
    link_rec, link_key, strong, key_base, n = graph
    phase_labels = []
    src, dst = [], []
    for i in order:
        if rules[i].never_merges:
            continue
        chosen = strong & (link_rule == i)
        src.append(link_rec[chosen])
        dst.append(key_base + link_key[chosen])
        phase_labels.append((rules[i].name, _components(n, src, dst)))
    phase_labels.extend(guarded)
    key_of = known.assign(comp=key_label[known["key"].to_numpy()])
    rows = []
    for merged, comp in absorbed.itertuples(index=False):
        kept = int(comp_oneid[comp])
        here = key_of[key_of["comp"] == comp]
        mine = int(here.loc[here["oneid"] == merged, "key"].iloc[0])
        theirs = int(here.loc[here["oneid"] == kept, "key"].iloc[0])
        rule = next(
            (name for name, lab in phase_labels if lab[key_base + mine] == lab[key_base + theirs]),
            phase_labels[-1][0],
        )
        rows.append((kept, int(merged), rule))
    return pd.DataFrame(rows, columns=["kept", "merged", "rule"]).sort_values(
        ["kept", "merged"], ignore_index=True
    )
