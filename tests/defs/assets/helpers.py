from __future__ import annotations

import hashlib
from pathlib import Path

import dagster as dg

from platform_assets.defs.ingestion.assets import raw_assets
from platform_assets.defs.validation.assets import validated_assets
from platform_assets.lib.resources import PlatformPathsResource, RawSourceResource


def resources(home: Path, raw_dir: Path) -> dict:
    return {"platform": PlatformPathsResource(home=str(home)), "raw_source": RawSourceResource(data_dir=str(raw_dir))}


def materialize(
    names: list[str], home: Path, raw_dir: Path, partition: str | None = None, extra: list | None = None, **kwargs
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*raw_assets, *validated_assets, *(extra or [])],
        selection=names,
        partition_key=partition,
        resources=resources(home, raw_dir),
        **kwargs,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}
