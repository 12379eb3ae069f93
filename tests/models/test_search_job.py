"""The fan-out search job, run for real on one machine: workers share one Optuna study (SQLite here,
an RDB server on a cluster), trials are MLflow child runs, and delay_model trains the winner."""

from __future__ import annotations

import dagster as dg
import optuna
from mlflow import MlflowClient

from platform_assets.lib.models.search_job import study_storage
from tests.models.conftest import (
    MODEL,
    TRAIN_END,
    TRAIN_START,
    lifecycle,
    metadata,
    model_assets,
    run_config,
    training_config,
)

hyperparameter_search = lifecycle("delay").build_jobs()["search"]
delay_model = model_assets("delay")["model"]


def test_workers_share_one_study_and_delay_model_trains_its_winner(resources) -> None:
    plan = {
        "start_month": TRAIN_START, "end_month": TRAIN_END, "study_name": "fan-out",
        "trials": 5, "workers": 3, "trial_members": 1,
    }
    result = hyperparameter_search.execute_in_process(
        run_config={"ops": {"delay__plan_search": {"config": plan}}}, resources=resources
    )
    assert result.success
    workers = sorted(
        e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS" and e.step_key.startswith("delay__search_worker")
    )
    assert workers == ["delay__search_worker[worker_0]", "delay__search_worker[worker_1]", "delay__search_worker[worker_2]"]
    paths = resources["platform"].paths
    study = optuna.load_study(study_name="fan-out", storage=study_storage(paths))
    assert len(study.trials) == 5  # 2 + 2 + 1 trials, one study
    assert study.trials[0].params["dropout"] == 0.5  # the default recipe goes first
    best = result.output_for_node("delay__collect_search")
    client: MlflowClient = resources["mlflow_store"].client()
    parent = client.search_runs(
        [client.get_experiment_by_name(MODEL.experiment).experiment_id], "params.study = 'fan-out'"
    )[0]
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(children) == 5
    assert float(parent.data.params["best_dropout"]) == best["dropout"]

    trained = metadata(
        dg.materialize([delay_model], resources=resources, run_config=run_config(training_config(search_study="fan-out"))),
        "delay/model",
    )
    assert trained["hyperparameters"]["dropout"] == float(best["dropout"])
    assert trained["hyperparameters"]["hidden_sizes"] == best["hidden_sizes"]


def test_a_trial_trailing_the_median_is_pruned_at_its_epoch(home, resources) -> None:
    """The pruning path end to end: three earlier trials reached a validation loss of 0.05 at every
    epoch; a real trial (loss about 0.5) is stopped after the warm-up epochs, its child run says so."""
    import mlflow
    import polars as pl
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    from platform_assets.ml.params import TrainParams
    from platform_assets.ml.preprocessing import labelled
    from platform_assets.ml.search import SearchBudget, SearchSpace, create_study, optimize
    from platform_assets.paths import PlatformPaths
    from tests.models.conftest import FAST_TRAINING

    space, budget = SearchSpace(), SearchBudget(trials=1, startup_trials=3, warmup_epochs=2)
    study = create_study("pruning", seed=1, budget=budget)
    distributions = {
        "learning_rate": FloatDistribution(*space.learning_rate, log=True),
        "weight_decay": FloatDistribution(*space.weight_decay, log=True),
        "dropout": FloatDistribution(*space.dropout),
        "hidden_width": CategoricalDistribution(list(space.hidden_width)),
    }
    for _ in range(3):
        study.add_trial(create_trial(
            params={"learning_rate": 2e-3, "weight_decay": 1e-2, "dropout": 0.5, "hidden_width": 64},
            distributions=distributions, value=0.05,
            intermediate_values={epoch: 0.05 for epoch in range(1, 13)},
        ))
    frame = labelled(pl.read_parquet(PlatformPaths(home).training_set_file(TRAIN_START, TRAIN_END, "delay_training_set")), MODEL.label)
    experiment = resources["mlflow_store"].activate(MODEL.experiment)
    with mlflow.start_run(experiment_id=experiment) as parent:
        optimize(study, frame, MODEL.columns, TrainParams(**FAST_TRAINING), space, budget, trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    assert max(trial.intermediate_values) == budget.warmup_epochs  # stopped at the first epoch it may be
    [child] = MlflowClient().search_runs([experiment], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert child.data.tags["optuna_state"] == "PRUNED"
