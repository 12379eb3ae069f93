"""Resources shared by several asset groups."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from platform_assets.lib.paths import PlatformPaths


class PlatformPathsResource(dg.ConfigurableResource):
    """Root of all state a run writes (PLATFORM_HOME)."""

    home: str = Field(description="Absolute path of PLATFORM_HOME; everything a run writes is under it.")

    @property
    def paths(self) -> PlatformPaths:
        return PlatformPaths(Path(self.home))
