"""Plain Python for models, no Dagster: the tabular network and its training loop, preprocessing,
the MLflow pyfunc and registry access, evaluation, model cards, drift statistics, search, and the
retraining-policy frontier."""
