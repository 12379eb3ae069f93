"""Metadata tables the model assets show in the UI: missing features, calibration bins."""

from typing import TYPE_CHECKING, Any

import dagster as dg

from platform_assets.ml.spec import ModelSpec

if TYPE_CHECKING:
    import polars as pl


def missing_features(frame: "pl.DataFrame", spec: ModelSpec) -> dict[str, int]:
    """Null count per model feature that has any nulls (the model's missing-value path scores them)."""
    numeric, categorical = spec.columns.features(frame.drop(spec.prediction, strict=False))
    counts = frame.select([*numeric, *categorical]).null_count().row(0, named=True)
    return {column: int(n) for column, n in sorted(counts.items(), key=lambda kv: -kv[1]) if n}


def missing_table(missing: dict[str, int], rows: int) -> dg.TableMetadataValue:
    columns = [
        dg.TableColumn("feature", "string"),
        dg.TableColumn("rows_missing", "int"),
        dg.TableColumn("share", "float"),
    ]
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"feature": c, "rows_missing": n, "share": round(n / max(rows, 1), 4)})
            for c, n in missing.items()
        ],
        schema=dg.TableSchema(columns=columns),
    )


def reliability_metadata(rows: list[dict[str, Any]]) -> dg.TableMetadataValue:
    """The calibration bins as a table in the asset page."""
    columns = [
        dg.TableColumn("bin", "string", description="predicted probability range"),
        dg.TableColumn("rows", "int"),
        dg.TableColumn("mean_predicted", "float"),
        dg.TableColumn("observed_rate", "float"),
    ]
    return dg.MetadataValue.table(
        records=[dg.TableRecord({c.name: row[c.name] for c in columns}) for row in rows],
        schema=dg.TableSchema(columns=columns),
    )


