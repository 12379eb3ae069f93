"""The model-lifecycle component: one `defs.yaml` under defs/models/<model>/ declares a model, and
this builds its whole loop under the model's asset-key prefix and group.

    training_set -> model -> evaluation (check promotion_gate) -> champion
    predictions[month] -> drift_report[month] -> <prefix>_drift_retrain_sensor -> <prefix>_train_and_promote

plus its monthly scoring job, a hyperparameter-search job, a monthly retrain schedule (stopped) and
a monthly scoring schedule (stopped). The model server reads the same declarations for its routes.
"""

from typing import Any

import dagster as dg

from platform_assets.lib.k8s import gpu_step_k8s_config
from platform_assets.lib.models.config import ModelConfigs
from platform_assets.lib.models.keys import TRAINING_ASSETS, ModelKeys
from platform_assets.lib.models.promotion import build_champion_asset, build_evaluation_asset
from platform_assets.lib.models.refit import build_refit_asset
from platform_assets.lib.models.scoring import build_drift_report_asset, build_predictions_asset
from platform_assets.lib.models.search_job import build_search_job
from platform_assets.lib.models.sensor import (
    ModelLoop,
    build_drift_retrain_sensor,
    build_scheduled_retrain,
)
from platform_assets.lib.models.training import build_model_asset
from platform_assets.lib.models.training_set import build_training_set_asset
from platform_assets.ml.declaration import ModelDeclaration
from platform_assets.settings import GpuStepSettings, settings


class ModelLifecycle(dg.Component, dg.Resolvable, ModelDeclaration):
    """A model's training, gate, promotion, monthly scoring, drift report, retrain sensor and jobs,
    from its declaration (the fields of ml/declaration.py's ModelDeclaration)."""

    @property
    def keys(self) -> ModelKeys:
        return ModelKeys(self.key_prefix)

    def training_op_tags(self) -> dict[str, Any]:
        """`dagster-k8s/config` of the training steps: the declaration's k8s fields over PLATFORM_GPU_*."""
        declared = {k: v for k, v in self.k8s.model_dump().items() if v is not None}
        gpu: GpuStepSettings = settings().gpu
        return {"dagster-k8s/config": gpu_step_k8s_config(GpuStepSettings(**{**vars(gpu), **declared}))}

    @property
    def loop(self) -> ModelLoop:
        return ModelLoop(
            scoring_job=self.keys.scoring_job,
            first_window=self.training.window,
            holdout_months=self.training.holdout_months,
            search=self.training.search_trials > 0,
        )

    def build_assets(self) -> list[dg.AssetsDefinition]:
        spec, keys, configs = self.spec, self.keys, ModelConfigs.of(self)
        return [
            build_training_set_asset(spec, keys, configs.training_set),
            build_model_asset(spec, keys, configs.training, self.training_op_tags()),
            build_evaluation_asset(spec, keys, configs.evaluation),
            build_refit_asset(spec, keys, self.training_op_tags()),
            build_champion_asset(spec, keys),
            build_predictions_asset(spec, keys),
            build_drift_report_asset(spec, keys),
        ]

    def build_jobs(self) -> dict[str, Any]:
        keys = self.keys
        train = dg.define_asset_job(
            keys.train_job,
            selection=dg.AssetSelection.assets(*(keys.key(a) for a in TRAINING_ASSETS)),
            tags={"platform/gpu": "true", "platform/model": keys.prefix},
            description=f"{self.name}: training set for a window, train a candidate, gate it on the next "
            "month, promote it if the gate passes.",
        )
        scoring = dg.define_asset_job(
            keys.scoring_job,
            selection=dg.AssetSelection.assets(keys.predictions, keys.drift_report),
            tags={"platform/model": keys.prefix},
            description=f"Score one month with {self.name}'s champion and compare it with its training data.",
        )
        search = build_search_job(
            self.spec,
            training_set=keys.name("training_set"),
            name=keys.search_job,
            op_tags=self.training_op_tags(),
            op_prefix=keys.op(""),
        )
        return {"train": train, "scoring": scoring, "search": search}

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        keys = self.keys
        policy = self.retrain.policy
        status = dg.DefaultSensorStatus.RUNNING if self.retrain.sensor == "running" else dg.DefaultSensorStatus.STOPPED
        jobs = self.build_jobs()
        scoring_schedule = dg.build_schedule_from_partitioned_job(
            jobs["scoring"],
            name=keys.name("monthly_scoring_schedule"),
            day_of_month=1,
            hour_of_day=4,
            default_status=dg.DefaultScheduleStatus.STOPPED,
            description=f"The newest month: {self.name}'s champion scores it, then the drift report its "
            "sensor reads. Stopped by default: start it with monthly_pipeline_schedule where a month lands monthly.",
        )
        return dg.Definitions(
            assets=self.build_assets(),
            jobs=list(jobs.values()),
            sensors=[build_drift_retrain_sensor(keys, policy, [jobs["train"], jobs["scoring"]], status, self.loop)],
            schedules=[build_scheduled_retrain(keys, policy, keys.train_job), scoring_schedule],
        )
