"""Keep the lineage graph in step with the tag dictionary and the model registry: every
saved tag, algorithm model, data field and data source re-derives the inputs its
definition, kind (or mapping) implies; a published fit re-derives the tags its model
reads."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from tagportal.catalog.models import Tag
from tagportal.predictive.choices import ModelRunStatus
from tagportal.predictive.models import ModelRun, PredictiveModel
from tagportal.predictive.services import SCORED_WITH

from .models import DataField, DataSource


@receiver(post_save, sender=Tag, dispatch_uid="lineage_sync_tag_inputs")
def tag_saved(sender, instance, created, raw=False, **kwargs):
    """A cycle raises ``ValidationError``; the tag services run in a transaction, so the
    save is undone and the API answers 400."""
    if raw:
        return
    from . import services

    services.sync_tag_inputs(instance)
    if created:
        services.sync_readers(instance)
        services.sync_tag_models(instance)


@receiver(post_save, sender=DataField, dispatch_uid="lineage_sync_field_inputs")
def field_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    from . import services

    services.sync_field_inputs(instance)
    services.sync_field_models(instance)


@receiver(post_save, sender=DataSource, dispatch_uid="lineage_sync_source_fields")
def source_saved(sender, instance, created, raw=False, **kwargs):
    """A source moving to another business line feeds other tags."""
    loaded = getattr(instance, "_loaded_business_line_id", instance.business_line_id)
    instance._loaded_business_line_id = instance.business_line_id
    if raw or created or loaded == instance.business_line_id:
        return
    from . import services

    for data_field in instance.fields.all():
        services.sync_field_inputs(data_field)
        services.sync_field_models(data_field)


@receiver(post_save, sender=PredictiveModel, dispatch_uid="lineage_sync_model_inputs")
def model_saved(sender, instance, created, raw=False, **kwargs):
    """A model's kind, brand or activity decides the fields it reads; its outputs are read
    from the registry as they are (a removed output leaves the graph with its row)."""
    if raw:
        return
    from . import services

    services.sync_model_inputs(instance)


def _is_published_fit(run: ModelRun) -> bool:
    window = run.window if isinstance(run.window, dict) else {}
    return run.status == ModelRunStatus.PUBLISHED and SCORED_WITH not in window


@receiver(post_save, sender=ModelRun, dispatch_uid="lineage_sync_model_tags")
def run_saved(sender, instance, created, raw=False, **kwargs):
    """A fit becoming published decides the tags its model reads (its ``tag:<code>``
    features); a held, failed or scoring run changes nothing."""
    if raw or not _is_published_fit(instance):
        return
    from . import services

    services.sync_model_tags(instance.model)


@receiver(post_delete, sender=ModelRun, dispatch_uid="lineage_unlink_model_tags")
def run_deleted(sender, instance, **kwargs):
    """Deleting a published fit hands the model's tags back to the fit published before."""
    if not _is_published_fit(instance):
        return
    from . import services

    model = PredictiveModel.objects.filter(pk=instance.model_id).first()
    if model is not None:  # not when the model itself is being deleted
        services.sync_model_tags(model)
