"""The delay model's declaration: its label, feature service, registered name and categories."""

from platform_assets.ml.spec import FLIGHT_CATEGORIES, ModelSpec

MODEL = ModelSpec(
    name="flight_delay_model",
    # is_delayed is written once, in dbt's stg_flights: arr_delay > 15 (a var of the dbt project).
    label="is_delayed",
    label_rule="arrives more than 15 minutes late; unknown (not trained on) for cancelled and "
    "diverted flights",
    prediction="delay_probability",
    feature_service="delay_model_v1",
    experiment="flight_delay",
    categorical=FLIGHT_CATEGORIES,
)
