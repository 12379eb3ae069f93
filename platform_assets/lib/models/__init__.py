"""The model-lifecycle component: one declaration (a defs.yaml) per model gives its training set,
model, gated evaluation, champion, monthly scores and drift reports, retrain sensor and jobs."""

from platform_assets.lib.models.component import ModelLifecycle

__all__ = ["ModelLifecycle"]
