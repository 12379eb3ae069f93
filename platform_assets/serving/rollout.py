"""Which registered version answers a flight: the champion, or the challenger in canary or shadow.

`ModelSlots` holds the loaded champion and challenger; `AliasWatcher` polls the registry and, when
an alias moves, loads the new version beside the old one and swaps the slots in one assignment, so
requests in flight finish on the versions they started with and none fails during the change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from platform_assets.ml.registry import CHAMPION

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from platform_assets.serving.features import FeatureRows
    from platform_assets.serving.instances import Flight

CHALLENGER = "challenger"
Mode = Literal["champion", "canary", "shadow"]
MODES: tuple[Mode, ...] = ("champion", "canary", "shadow")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rollout:
    """`canary`: flights whose key hashes below `canary_percent` are answered by the challenger.
    `shadow`: the challenger scores every flight beside the champion; only the champion answers."""

    mode: Mode = "champion"
    canary_percent: float = 20.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"rollout mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not 0 <= self.canary_percent <= 100:
            raise ValueError(f"canary_percent must be within 0-100; got {self.canary_percent}")

    def to_canary(self, flight: Flight) -> bool:
        return self.mode == "canary" and flight.bucket() < self.canary_percent


class LoadedVersion:
    """A registered version: its stored preprocessing and its stacked ensemble, scoring feature
    columns with the numbers batch scoring gives the same rows."""

    def __init__(self, name: str, version: str) -> None:
        import mlflow

        from platform_assets.serving.scoring import RecordTransform

        self.name, self.version = name, str(version)
        python_model = mlflow.pyfunc.load_model(f"models:/{name}/{version}").unwrap_python_model()
        self.preprocessor = python_model.preprocessor
        self.model = python_model.model
        self.transform = RecordTransform(self.preprocessor)

    def predict(self, rows: FeatureRows) -> np.ndarray:
        from platform_assets.serving.scoring import score

        return score(self.model, *self.transform.transform(rows.columns, len(rows)))


@dataclass(frozen=True)
class ModelSlots:
    champion: LoadedVersion
    challenger: LoadedVersion | None


class AliasWatcher:
    """Keeps `slots` on the versions holding the champion and challenger aliases."""

    def __init__(
        self,
        client_factory: Callable[[], MlflowClient],
        name: str,
        poll_seconds: float,
        loader: Callable[[str, str], LoadedVersion] = LoadedVersion,
    ) -> None:
        self.client_factory, self.name, self.poll_seconds = client_factory, name, poll_seconds
        self.loader = loader
        self.slots: ModelSlots | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _aliases(self) -> tuple[str | None, str | None]:
        from platform_assets.ml.registry import alias_version

        client = self.client_factory()
        versions = [alias_version(client, alias, self.name) for alias in (CHAMPION, CHALLENGER)]
        return tuple(str(v.version) if v is not None else None for v in versions)  # type: ignore[return-value]

    def refresh(self) -> bool:
        """Load whatever the aliases point at now; True when the slots changed."""
        champion, challenger = self._aliases()
        if champion is None:
            raise LookupError(f"{self.name} has no '{CHAMPION}' version: train and promote one first")
        current = self.slots
        loaded = {}
        if current is not None:
            loaded = {current.champion.version: current.champion}
            if current.challenger is not None:
                loaded[current.challenger.version] = current.challenger
            if current.champion.version == champion and (
                (current.challenger.version if current.challenger else None) == challenger
            ):
                return False

        def get(version: str) -> LoadedVersion:
            return loaded.get(version) or self.loader(self.name, version)

        self.slots = ModelSlots(get(champion), get(challenger) if challenger else None)
        log.info("serving %s v%s, challenger %s", self.name, champion, challenger or "none")
        return True

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="alias-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.refresh()
            except Exception:  # a registry hiccup must not stop the server
                log.exception("alias refresh failed; still serving the loaded versions")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

