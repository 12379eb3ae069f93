"""Defaults of every knob, in one place; the dg.Config classes document them."""

MAX_QUARANTINE_SHARE = 0.01

# Training (delay_model): the network's hyperparameters; its window defaults to TRAINING_SET_*_MONTH.
# One narrow hidden layer with heavy dropout, five seeds averaged: chosen against HistGradientBoosting
# on the seven rolling 2013 windows (README, "The delay model"). Wider/deeper nets memorise the
# days of the training window (flights of one hour share its weather) and lose AUC on the next month.
TRAIN_HIDDEN_SIZES = (64,)
TRAIN_DROPOUT = 0.5
TRAIN_ENSEMBLE_SIZE = 5
TRAIN_LEARNING_RATE = 2e-3
TRAIN_WEIGHT_DECAY = 1e-2
TRAIN_BATCH_SIZE = 2048
TRAIN_MAX_EPOCHS = 30
TRAIN_PATIENCE = 3
TRAIN_MIN_EPOCHS = 5
TRAIN_VALIDATION_DAYS = 14
TRAIN_SEED = 13
# Numeric preprocessing: knots of the rank-to-normal map, and quantile bins embedded beside it.
QUANTILE_KNOTS = 256
NUMERIC_BINS = 16
SEARCH_TRIALS = 4

# Registry and promotion gate.
MODEL_NAME = "flight_delay_model"
MLFLOW_EXPERIMENT = "flight_delay"
HOLDOUT_MONTHS = 1
PROMOTION_MIN_AUC_GAIN = 0.0
BASELINE_MIN_AUC = 0.5

# Features (Feast): the service the model reads, the pool guarding the registry and SQLite
# online store, the configuration file in feature_repo/, and the training-set window.
FEATURE_SERVICE = "delay_model_v1"
FEAST_POOL = "feast"
FEATURE_STORE_YAML = "feature_store.yaml"
TRAINING_SET_START_MONTH = "2013-01"
TRAINING_SET_END_MONTH = "2013-04"

# Monitoring: drift reports and the retraining policy the drift sensor applies.
DRIFT_SAMPLE_ROWS = 5000
DRIFT_SHARE_THRESHOLD = 0.75
AUC_DROP_THRESHOLD = 0.01
RETRAIN_WINDOW_MONTHS = 4
# The replay of 2013: the first champion trains on TRAINING_SET_*_MONTH and is gated on the next month;
# scoring, drift reports and the sensor's decisions run from that month on.
REPLAY_FIRST_SCORED_MONTH = "2013-05"
