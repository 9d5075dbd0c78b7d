"""The demo brands' algorithm models: fitted and scored once their tags are computed."""

from __future__ import annotations

from tagportal.catalog.models import Brand
from tagportal.engine.services import compute_brand
from tagportal.lineage.services import tag_dependents
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.models import ModelRun, PredictiveModel
from tagportal.predictive.services import run_model


def run_demo_models(brand: Brand) -> list[ModelRun]:
    """Run each of the brand's active models once (the template created them), then
    recompute the tags that read the tags the published runs filled (e.g. 高价值流失预警
    reads RFM客户分层 and 流失风险). A held run writes nothing, honestly: it waits in the
    stewards' review queue."""
    runs = [
        run_model(model)
        for model in PredictiveModel.objects.filter(brand=brand, is_active=True).order_by("pk")
    ]
    filled = [
        output.tag
        for run in runs
        if run.status == ModelRunStatus.PUBLISHED
        for output in run.model.outputs.select_related("tag")
    ]
    readers = {
        tag.pk for output_tag in filled for tag in tag_dependents(output_tag) if tag.brand_id == brand.pk
    }
    if readers:
        compute_brand(brand, tag_ids=sorted(readers))
    return runs
