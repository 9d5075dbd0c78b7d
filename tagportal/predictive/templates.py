"""Template tags backed by algorithm models.

An industry template tag may declare the model output that fills it
(``model: {kind: churn, output: churn_level, parameters: {...}}``, see
:mod:`tagportal.catalog.templates`). The dictionary cannot import this app, so:

- :func:`check_model` judges such a declaration when packs are checked (registered with
  :func:`tagportal.catalog.hooks.register_model_check`): the kind and output exist, the
  parameters are the kind's, the tag has the output's value type, and an enum tag has
  exactly the output's value codes (the model writes those codes into the tag).
- :func:`link_template_tags` receives :data:`tagportal.catalog.signals.template_applied`:
  for each such tag of the brand it finds the brand's model of that kind (the oldest), or
  creates one (the declared parameters, a daily schedule), and records the tag as that
  output (:class:`~.models.ModelOutput`), so :func:`~.services.ensure_outputs` creates no
  second tag for it. A tag already linked, an output already filling another tag, or a
  tag whose current version is no longer model-backed (edited by the brand) is left alone.
"""

from __future__ import annotations

import logging

from tagportal.catalog.choices import TagKind

from .choices import ModelKind
from .kinds import KINDS, ParametersRefused
from .models import ModelOutput, PredictiveModel

log = logging.getLogger(__name__)

#: The names of the models a template creates (data, like tag names).
MODEL_NAMES = {
    ModelKind.RFM: "RFM 客户分层",
    ModelKind.CLV: "购买意向与客户终身价值",
    ModelKind.CHURN: "流失预警",
    ModelKind.AIPL: "AIPL 阶段",
}
#: When template models retrain (Beijing time), after the nightly tag computation.
TEMPLATE_SCHEDULE = "0 4 * * *"


def check_model(model: dict, value_type: str, value_codes: list[str]) -> list[str]:
    """Problems with a template tag's ``model`` declaration (plain strings, like the pack checks)."""
    kind = KINDS.get(model.get("kind"))
    if kind is None:
        return [f"unknown model kind {model.get('kind')!r} (known: {', '.join(sorted(KINDS))})"]
    outputs = {o.key: o for o in kind.outputs}
    output = outputs.get(model.get("output"))
    if output is None:
        return [f"the {kind.key} model has no output {model.get('output')!r} (it has: {', '.join(outputs)})"]
    problems = []
    try:
        kind.config(model.get("parameters") or {})
    except ParametersRefused as exc:
        problems.append(f"parameters refused: {exc}")
    if value_type != output.value_type:
        problems.append(f"the output {output.key!r} is of value type {output.value_type}, not {value_type}")
    elif output.value_type == "enum":
        expected = [str(v["code"]) for v in output.values]
        if sorted(value_codes) != sorted(expected):
            problems.append(f"the values must be the output's codes {expected}, not {value_codes}")
    return problems


def _model_of(brand, kind: str, parameters: dict, user) -> PredictiveModel:
    model = PredictiveModel.objects.filter(brand=brand, kind=kind).order_by("pk").first()
    if model is not None:
        return model
    name = MODEL_NAMES[kind]
    if PredictiveModel.objects.filter(brand=brand, name=name).exists():
        name = f"{name} ({kind})"
    model = PredictiveModel(
        brand=brand,
        kind=kind,
        name=name,
        parameters=dict(parameters),
        schedule=TEMPLATE_SCHEDULE,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    model.full_clean()
    model.save()
    return model


def _model_backed(tag) -> bool:
    return tag.kind == TagKind.ALGORITHM and tag.definition == {"type": "manual"}


def link_template_tags(sender, brand, pack, tags, user=None, **kwargs) -> list[ModelOutput]:
    """Link the brand's model-backed template tags to its models (module docstring); the
    outputs linked now."""
    linked = []
    for spec in pack.tags:
        declared = spec.get("model")
        tag = tags.get(spec["name"])
        if not isinstance(declared, dict) or tag is None or not _model_backed(tag):
            continue
        if ModelOutput.objects.filter(tag=tag).exists():
            continue
        model = _model_of(brand, declared["kind"], declared.get("parameters") or {}, user)
        if ModelOutput.objects.filter(model=model, key=declared["output"]).exists():
            log.info("template tag %s: output %s of model %s fills another tag", tag.code, declared, model.pk)
            continue
        linked.append(ModelOutput.objects.create(model=model, key=declared["output"], tag=tag))
    return linked
