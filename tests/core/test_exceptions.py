"""error_text: one line for a refused action, whichever app refused it."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError

from tagportal.audiences import services as _audiences  # noqa: F401  (registers the words for NoResult)
from tagportal.audiences.store import NoResult
from tagportal.core.exceptions import Conflict, conflict_text, error_text
from tagportal.rules.definitions import RuleError, RuleValidationError


def test_validation_errors_say_their_messages():
    assert error_text(ValidationError(["First.", "Second."])) == "First. Second."
    assert (
        error_text(ValidationError({"reason": ["Say why."], "__all__": ["Not now."]})) == "Say why. Not now."
    )


def test_a_refusal_without_words_still_says_something():
    assert error_text(PermissionDenied()) == "You may not do this."
    assert error_text(PermissionDenied("Only stewards approve.")) == "Only stewards approve."


def test_a_conflict_says_what_it_carries():
    plain = Conflict("The request changed.")
    assert error_text(plain) == conflict_text(plain) == "The request changed."
    dependents = Conflict("Confirm the dependents.", dependents={"a": [{"name": "复购", "code": "b"}]})
    assert error_text(dependents) == "Confirm the dependents. Read by 复购 (b) → a."
    stale = Conflict("Stale.", base_version=2, current_version=3)
    assert error_text(stale) == "Stale. Based on version 2; the published version is now 3."


def test_apps_register_the_words_for_their_exceptions():
    rules = RuleValidationError(
        [RuleError("", "at most 64 conditions"), RuleError("all[1].tag", "unknown tag “x”")],
        document="expression",
    )
    assert error_text(rules) == "at most 64 conditions all[1].tag: unknown tag “x”"
    assert error_text(NoResult(["a", "b"])) == "Not computed yet: a, b. Compute the tags first."
