"""The delay model's hyperparameter search as a fan-out job: `workers` steps share one Optuna study."""

from platform_assets.delay_model.spec import MODEL
from platform_assets.lib.k8s import training_op_tags
from platform_assets.lib.models.search_job import build_search_job

hyperparameter_search = build_search_job(
    MODEL, training_set="training_set", name="hyperparameter_search", op_tags=training_op_tags()
)
