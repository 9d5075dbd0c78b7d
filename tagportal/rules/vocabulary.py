"""The vocabulary a rule may use: profile attributes, the fields of each activity
source, event types and channels, with their types.

The rule language knows only the shape of a vocabulary; the profile data model
(:mod:`tagportal.profiles.schema`) registers the real one when the profiles app is
ready, so this package stays below the apps that own the data.

>>> vocabulary = Vocabulary(attributes={"age": NUMBER}, sources={"orders": {"amount": NUMBER}})
>>> vocabulary.field_type("orders", "amount"), vocabulary.field_type("orders", "properties.size")
('number', 'any')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

NUMBER = "number"
STRING = "string"
DATE = "date"
ANY = "any"


@dataclass(frozen=True)
class Vocabulary:
    attributes: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    channels: tuple[str, ...] = ()
    event_types: Callable[[], set[str]] = set

    def field_type(self, source: str, name: str) -> str | None:
        """The type of ``name`` on a source, ``any`` for free-form ``properties.*``."""
        if name.startswith("properties.") and len(name) > len("properties."):
            return ANY
        return self.sources.get(source, {}).get(name)


_registered = Vocabulary()


def register(vocabulary: Vocabulary) -> None:
    """Make ``vocabulary`` the one rules are validated against."""
    global _registered
    _registered = vocabulary


def current() -> Vocabulary:
    return _registered
