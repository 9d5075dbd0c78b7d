"""Deterministic assignment and variant choice at a send node (a minimal version;
the variants module proper replaces it, keeping these signatures)."""

from __future__ import annotations

import hashlib


def bucket(journey_id: int, oneid: int, salt: str) -> float:
    """A number in [0, 1) fixed by (journey, person, salt): the same person always lands
    in the same split way, holdout arm or variant."""
    digest = hashlib.sha256(f"{journey_id}:{oneid}:{salt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def stats(journey, node_id: str) -> dict:
    """Per variant key of a send node: what is known of its results (empty here)."""
    return {}


def choose(node: dict, journey, oneid: int, stats: dict) -> str:
    """The variant key a person gets at a send node with variants: an even deterministic split."""
    variants = (node.get("config") or {}).get("variants") or []
    if not variants:
        return ""
    index = int(bucket(journey.pk, oneid, f"variant:{node.get('id')}") * len(variants))
    return variants[min(index, len(variants) - 1)]["key"]
