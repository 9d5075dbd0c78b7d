"""The computation fingerprint of a published version: a digest of what the engine reads
to compute the tag (its value type, its values' codes and bucket bounds, its definition).

Two versions with the same fingerprint compute the same result: a new description, name,
owner, category or schedule publishes a new version without changing what audiences built
on the tag select, so they are not asked to re-pin for it."""

from __future__ import annotations

import hashlib
import json

#: Keys of a value that only label it: a new label does not change what is computed.
DISPLAY_KEYS = frozenset({"label", "label_en", "description", "color"})


def _computed_values(values) -> list:
    out = []
    for value in values or []:
        if isinstance(value, dict):
            out.append({k: v for k, v in sorted(value.items()) if k not in DISPLAY_KEYS})
        else:
            out.append(value)
    return out


def computation_fingerprint(snapshot: dict) -> str:
    """A hex digest of the parts of a tag ``snapshot`` (``tag_snapshot``'s shape) that the
    engine reads: ``value_type``, ``values`` (their order, codes and bounds, not their
    labels) and ``definition``."""
    snapshot = snapshot or {}
    payload = {
        "value_type": snapshot.get("value_type") or "",
        "values": _computed_values(snapshot.get("values")),
        "definition": snapshot.get("definition") or {},
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
