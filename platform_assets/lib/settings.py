"""The one place that reads PLATFORM_ENV and PLATFORM_HOME."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REPO_ROOT = Path(__file__).resolve().parents[2]

PlatformEnv = Literal["local", "k8s"]
_ENVS: tuple[PlatformEnv, ...] = ("local", "k8s")


@dataclass(frozen=True)
class PlatformSettings:
    env: PlatformEnv
    home: Path

    @classmethod
    def from_env(cls) -> PlatformSettings:
        env = os.environ.get("PLATFORM_ENV", "local").strip().lower() or "local"
        if env not in _ENVS:
            raise ValueError(f"PLATFORM_ENV must be one of {', '.join(_ENVS)}; got {env!r}")
        home = Path(os.environ.get("PLATFORM_HOME") or REPO_ROOT / ".platform").expanduser()
        return cls(env=env, home=home.resolve())  # type: ignore[arg-type]

    @property
    def dbt_target(self) -> str:
        """dbt profile output: the embedded DuckDB file locally, the shared warehouse on k8s."""
        return self.env

    def export(self) -> None:
        """Make the resolved home visible to subprocesses (dbt, feast) that read it from env."""
        os.environ["PLATFORM_HOME"] = str(self.home)
        os.environ["PLATFORM_ENV"] = self.env


def current() -> PlatformSettings:
    settings = PlatformSettings.from_env()
    settings.export()
    return settings
