"""The main numbers of a model run, with their labels: what the model page shows of a
run and what a steward compares when a held run awaits publishing."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from .choices import ModelKind


@dataclass(frozen=True)
class Number:
    path: str  # dotted path into the run's metrics
    label: object
    format: str = "{:,.4f}"


_CHURN = [
    Number("validation.auc", _("Validation ROC AUC")),
    Number("validation.pr_auc", _("PR AUC")),
    Number("validation.brier", _("Brier score")),
    Number("validation.brier_base_rate", _("Brier score of the base rate")),
    Number("validation.lift_top_decile", _("Lift in the top decile"), "{:,.2f}"),
    Number("validation.base_rate", _("Churn rate on the validation cut-off"), "{:.1%}"),
    Number("validation.rows", _("Validation rows"), "{:,}"),
    Number("training_rows", _("Training rows"), "{:,}"),
    Number("auc_floor", _("Run's own AUC floor"), "{:.2f}"),
]
_RFM = [
    Number("customers", _("Customers"), "{:,}"),
    Number("mean_scores.r", _("Mean R score"), "{:.2f}"),
    Number("mean_scores.f", _("Mean F score"), "{:.2f}"),
    Number("mean_scores.m", _("Mean M score"), "{:.2f}"),
]
_CLV = [
    Number("customers", _("Customers"), "{:,}"),
    Number("repeat_buyers", _("Repeat buyers"), "{:,}"),
    Number("bgnbd_log_likelihood", _("BG/NBD log-likelihood"), "{:,.1f}"),
    Number("bgnbd_log_likelihood_per_customer", _("Log-likelihood per customer")),
]
_AIPL = [Number("people", _("People with a stage"), "{:,}")]

NUMBERS: dict[str, list[Number]] = {
    ModelKind.CHURN: _CHURN,
    ModelKind.RFM: _RFM,
    ModelKind.CLV: _CLV,
    ModelKind.AIPL: _AIPL,
}


#: The churn warning's candidate models, by their names in a run's metrics.
CANDIDATES = {
    "logistic_regression": _("Logistic regression"),
    "hist_gradient_boosting": _("Histogram gradient boosting"),
    "random_forest": _("Random forest"),
}


def candidate_label(name: str) -> str:
    return str(CANDIDATES.get(name, name))


def value_at(metrics, path: str):
    """The number at ``path`` in ``metrics`` (``None`` when missing or not a number)."""
    value = metrics or {}
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def numbers(kind: str, metrics) -> list[tuple[Number, float]]:
    """The kind's main numbers present in ``metrics``, in order."""
    found = []
    for number in NUMBERS.get(kind, []):
        value = value_at(metrics, number.path)
        if value is not None:
            found.append((number, value))
    return found


def label_of(kind: str, path: str) -> str:
    """The label of the metric at ``path`` (the path itself when it has none)."""
    for number in NUMBERS.get(kind, []):
        if number.path == path:
            return str(number.label)
    return path
