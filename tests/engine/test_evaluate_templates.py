"""Every definition of every template pack computes on generated data.

The data uses the event types, channels, properties, categories and profile values
that the packs' own definitions name (read from the YAML), so that most tags find
someone to describe.
"""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tagportal.catalog.templates import available_packs, resolve_references
from tagportal.engine.evaluate import TagSpec, evaluate_tags
from tagportal.profiles import schema

AS_OF = dt.datetime(2026, 11, 28, 2, 0, tzinfo=dt.UTC)  # 10:00 in Beijing
NUMERIC_FIELDS = {"value", "amount", "quantity", "discount"}


def vocabulary(pack) -> dict[str, dict[str, list]]:
    """The values each source field and profile attribute is compared with or mapped from."""
    found: dict[str, dict[str, list]] = {"events": {}, "orders": {}, "profiles": {}}

    def add(kind, field, values):
        bucket = found[kind].setdefault(field, [])
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str | bool) and value not in bucket:
                bucket.append(value)

    def walk(node, source=None):
        if isinstance(node, dict):
            source = node.get("source", source)
            if "pick" in node:
                add(source, node["field"], [str(k) for k in node.get("map") or {}])
            if node.get("type") == "attribute":
                add("profiles", node["attribute"], [str(k) for k in node.get("map") or {}])
            elif "attribute" in node and "op" in node:
                add("profiles", node["attribute"], node.get("value"))
            for pred in node.get("where") or []:
                add(source, pred["field"], pred.get("value"))
            for value in node.values():
                walk(value, source)
        elif isinstance(node, list):
            for value in node:
                walk(value, source)

    for tag in pack.tags:
        walk(tag["definition"])
    return found


def _times(rng, n, days=420):
    """Moments spread over the last ``days`` days, a tenth of them today (Beijing)."""
    seconds = rng.integers(0, days * 86_400, n)
    today = rng.random(n) < 0.1
    seconds[today] = rng.integers(0, 8 * 3600, today.sum())  # 02:00..10:00 Beijing today
    return pd.Series(pd.Timestamp(AS_OF) - pd.to_timedelta(seconds, unit="s"))


def _pick(rng, values, n, missing=0.0):
    values = list(values)
    out = np.empty(n, dtype=object)
    out[:] = [values[i] for i in rng.integers(0, len(values), n)]
    out[rng.random(n) < missing] = None
    return out


def generate(pack, people=200, events=3000, orders=1500, seed=7):
    """Profiles, events and orders using the vocabulary of ``pack``."""
    rng = np.random.default_rng(seed)
    vocab = vocabulary(pack)
    ids = np.arange(1, people + 1, dtype="int64")
    attrs = vocab["profiles"]
    profiles = pd.DataFrame(
        {
            "oneid": ids,
            "gender": _pick(rng, ["female", "male", "unknown"], people, 0.1),
            "age": pd.array(rng.integers(15, 70, people), dtype="Int64"),
            "birth_month": rng.integers(1, 13, people),
            "city": _pick(rng, [*attrs.get("city", []), "北京", "拉萨", "大理", ""], people, 0.1),
            "member_level": _pick(rng, attrs.get("member_level") or ["普卡"], people, 0.05),
            "points": rng.integers(0, 9000, people),
            "registered_days": rng.integers(0, 1500, people),
            "source_channel": _pick(rng, schema.CHANNELS, people),
            "skin_type": _pick(rng, attrs.get("skin_type") or ["油性"], people, 0.2),
            "wecom_added": _pick(rng, ["yes", "no"], people, 0.1),
        }
    ).astype({"city": "string[pyarrow]", "gender": "string[pyarrow]"})
    frames = {}
    for source, count in (("events", events), ("orders", orders)):
        fields = vocab[source]
        weights = rng.pareto(1.5, people) + 0.2
        frame = pd.DataFrame(
            {
                "oneid": rng.choice(ids, count, p=weights / weights.sum()),
                "time": _times(rng, count),
                "channel": _pick(rng, fields.get("channel", []) + list(schema.CHANNELS), count),
                "store": _pick(rng, ["S01", "S02", "S03"], count),
            }
        )
        if source == "events":
            frame["type"] = _pick(rng, fields["type"], count)
            frame["value"] = rng.integers(0, 6, count).astype(float)
        else:
            frame["amount"] = np.round(rng.lognormal(8, 1.2, count), 2)
            frame["quantity"] = rng.integers(1, 6, count)
            frame["discount"] = np.where(rng.random(count) < 0.3, rng.integers(10, 500, count), 0.0)
            frame["category"] = _pick(rng, fields.get("category") or ["其他"], count, 0.05)
            frame["sku"] = _pick(rng, ["A1", "B2", "C3"], count)
        for name, values in fields.items():
            if name.startswith("properties.") and values:
                if all(isinstance(v, bool) for v in values):
                    frame[name] = _pick(rng, [True, False], count, 0.3)
                else:
                    frame[name] = _pick(rng, values, count, 0.3)
        frames[source] = frame.astype({"type": "string[pyarrow]"} if source == "events" else {})
    return profiles, frames["events"], frames["orders"]


def pack_specs(pack) -> list[TagSpec]:
    codes = {t["name"]: f"demo_{t['category'].split('/')[-1]}_{t['name']}" for t in pack.tags}
    return [
        TagSpec(
            codes[t["name"]],
            t["value_type"],
            resolve_references(t["definition"], codes),
            t.get("values"),
        )
        for t in pack.ordered_tags()
    ]


PACKS = sorted(available_packs())


def test_there_are_four_packs():
    assert set(PACKS) >= {"beauty", "food_beverage", "health_nutrition", "medical_aesthetics"}


@pytest.mark.parametrize("key", PACKS)
def test_every_definition_of_the_pack_computes(key):
    pack = available_packs()[key]
    profiles, events, orders = generate(pack)
    specs = pack_specs(pack)
    result = evaluate_tags(specs, profiles, events, orders, AS_OF)

    assert result.errors == {}
    assert set(result.values) == {s.code for s in specs}
    assert len(result.population) == 200
    computed = [s for s in specs if s.definition["type"] != "manual"]
    for spec in computed:
        series = result.values[spec.code]
        assert series.index.equals(result.population)
        assert series.notna().any(), f"{spec.code} has no value for anybody"
    booleans = [s for s in computed if s.value_type == "boolean"]
    with_true = [s.code for s in booleans if result.values[s.code].fillna(False).any()]
    assert len(with_true) >= 0.8 * len(booleans), sorted({s.code for s in booleans} - set(with_true))
    enums = [s for s in computed if s.value_type == "enum"]
    for spec in enums:
        declared = {v["code"] for v in spec.values or []}
        seen = set(result.values[spec.code].dropna())
        assert seen <= declared, (spec.code, seen - declared)
    assert sum(result.values[s.code].nunique() >= 2 for s in enums) >= 0.8 * len(enums)
    assert result.metrics_reused > 0
    for spec in specs:
        if spec.definition["type"] == "manual":
            assert result.values[spec.code].empty


@pytest.mark.parametrize("key", PACKS)
def test_every_definition_of_the_pack_computes_on_empty_data(key):
    specs = pack_specs(available_packs()[key])
    result = evaluate_tags(specs, None, None, None, AS_OF)
    assert result.errors == {}
    assert all(series.empty for series in result.values.values())
