"""A declared model's training set: its window's labelled flights with point-in-time features of
its Feast feature service, checked against the feature tables' contracts first."""

from typing import Any

import dagster as dg

from platform_assets.events import EVENTS_TABLE, FEATURE_TABLES, FLIGHT_COLUMNS
from platform_assets.lib.models.config import TrainingSetConfig
from platform_assets.lib.models.keys import ModelKeys
from platform_assets.lib.resources import PlatformPathsResource, check_same_home
from platform_assets.ml.spec import ModelSpec
from platform_assets.months import MonthWindow

FEAST_REGISTRY = "feast_registry"


def training_frame(store: Any, spec: ModelSpec, events_file: Any, window: MonthWindow) -> Any:
    """The window's labelled flights with their point-in-time features of the model's service."""
    import polars as pl

    from platform_assets.featurestore.feast import (
        historical_features,
        service_features,
        service_views,
    )
    from platform_assets.featurestore.table_contracts import (
        TableContract,
        check_table,
        view_contract,
    )

    check_table(
        TableContract(events_file, keys=("flight_id", "event_timestamp"), columns=(*FLIGHT_COLUMNS, spec.label))
    )
    for view in service_views(store, spec.feature_service):
        check_table(view_contract(view))
    entity_df = (
        pl.scan_parquet(events_file)
        .filter(
            pl.col("flight_month").is_between(pl.lit(window.start), pl.lit(window.end)),
            pl.col(spec.label).is_not_null(),
        )
        .select(*FLIGHT_COLUMNS, spec.label)
        .sort("event_timestamp", "flight_id")
        .collect()
        .to_pandas(use_pyarrow_extension_array=False)
    )
    if entity_df.empty:
        raise ValueError(f"{spec.name}: no labelled flights in {window} in {events_file}")
    features = service_features(store, spec.feature_service)
    joined = historical_features(store, entity_df, spec.feature_service)
    return joined[[*FLIGHT_COLUMNS, *features, spec.label]].astype({spec.label: "int8"}), features


def build_training_set_asset(
    spec: ModelSpec, keys: ModelKeys, config_type: type[TrainingSetConfig]
) -> dg.AssetsDefinition:
    """Point-in-time features of the model's feature service for a window's labelled flights."""

    @dg.asset(
        key=keys.training_set,
        group_name=keys.prefix,
        deps=[FEAST_REGISTRY, dg.AssetKey(EVENTS_TABLE), *(dg.AssetKey(t) for t in FEATURE_TABLES)],
        kinds={"feast", "parquet"},
        description=f"Point-in-time correct features of {spec.feature_service} for the window's "
        f"labelled flights (label {spec.label}: {spec.label_rule}).",
    )
    def training_set(
        context: dg.AssetExecutionContext,
        config: config_type,  # type: ignore[valid-type]
        feast: dg.ResourceParam[Any],
        platform: PlatformPathsResource,
    ) -> dg.MaterializeResult:
        import polars as pl

        from platform_assets.paths import write_parquet_atomic

        window = config.window()
        check_same_home(feast, platform)
        paths = platform.paths
        store = feast.store()
        store.refresh_registry()
        frame, features = training_frame(store, spec, paths.feature_table(EVENTS_TABLE), window)
        target = paths.training_set_file(window.start, window.end, keys.name("training_set"))
        write_parquet_atomic(pl.from_pandas(frame), target)
        label_rate = float(frame[spec.label].mean())
        context.log.info(f"{len(frame)} flights, label rate {label_rate:.3f}, written to {target}")
        return dg.MaterializeResult(
            metadata={
                "rows": len(frame),
                "dagster/row_count": len(frame),
                "label_rate": label_rate,
                "window": str(window),
                "feature_service": spec.feature_service,
                "features": features,
                "feature_null_share": {f: round(float(frame[f].isna().mean()), 4) for f in features},
                "path": dg.MetadataValue.path(str(target)),
            }
        )

    return training_set
