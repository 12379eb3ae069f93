"""The delay model: trained in torch and tracked in MLflow, gated on a held-out window, promoted by alias."""

from platform_assets.delay_model.spec import MODEL
from platform_assets.lib.k8s import training_op_tags
from platform_assets.lib.models.assets import build_training_assets

delay_model, model_evaluation, champion = build_training_assets(
    MODEL,
    training_set="training_set",
    model="delay_model",
    evaluation="model_evaluation",
    champion="champion",
    group="training",
    op_tags=training_op_tags(),
)
