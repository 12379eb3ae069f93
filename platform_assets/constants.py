"""Platform-wide defaults, in one place; the dg.Config classes and resources document them.

Training hyperparameters are in core/tabular/params.py (TrainParams); what is specific to one model
(its name, label, feature service) is in that model's package.
"""

MAX_QUARANTINE_SHARE = 0.01

# The evaluation gate every model passes before promotion.
HOLDOUT_MONTHS = 1
PROMOTION_MIN_AUC_GAIN = 0.0
BASELINE_MIN_AUC = 0.5
# Optuna trials of a hyperparameter search (make run searches once, for the first champion).
SEARCH_TRIALS = 8

# MLflow experiment of runs that name no model (a model's runs go to its own experiment).
MLFLOW_EXPERIMENT = "flight_platform"

# Pools of one slot guarding single-writer stores: the Feast registry and SQLite online store, and
# the DuckDB warehouse.
FEAST_POOL = "feast"
WAREHOUSE_POOL = "warehouse"

# Monitoring: drift reports and the retraining policy the drift sensor applies.
DRIFT_SAMPLE_ROWS = 5000
# Rows of its first served month a policy model's permutation importance is measured on (the replay
# summary's drifted-importance trigger): the first rows of the drift report's sample.
IMPORTANCE_SAMPLE_ROWS = 2000
# The retraining policy: retrain when the top of the month's 95% bootstrap AUC interval lies at
# least AUC_DROP_THRESHOLD below the champion's held-out AUC; the drifted share of features is a
# trigger only when a threshold is set (None: reported, not acted on).
DRIFT_SHARE_THRESHOLD: float | None = None
AUC_DROP_THRESHOLD = 0.03
AUC_INTERVAL_RESAMPLES = 200
# Resamples of the paired bootstrap of each replayed policy's mean AUC against frozen and monthly.
POLICY_INTERVAL_RESAMPLES = 100
RETRAIN_WINDOW_MONTHS = 4

# The replay of 2013: the first champion trains on these months and is gated on the next month;
# scoring, drift reports and the sensor's decisions run from that month on.
TRAINING_SET_START_MONTH = "2013-01"
TRAINING_SET_END_MONTH = "2013-04"
REPLAY_FIRST_SCORED_MONTH = "2013-05"
REPLAY_MODEL = "delay"  # key_prefix of the declared model make run replays
ONLINE_MODEL = "delay"  # key_prefix of the declared model whose served traffic defs/serving evaluates
