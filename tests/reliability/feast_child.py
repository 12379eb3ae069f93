"""`python -m tests.reliability.feast_child HOME MONTH mid|registry N`: materialize the month into
the Feast online store and SIGKILL this process either halfway through the Nth SQLite write batch
(its transaction uncommitted) or just before Feast records the Nth view's materialized interval in
the registry (that view's rows committed, the registry not yet told)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from feast.infra.online_stores.sqlite import SqliteOnlineStore
from feast.infra.registry.registry import Registry

from platform_assets.lib.resources import FeastResource, PlatformPathsResource
from tests.defs.features.helpers import materialize


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def kill_mid_batch(n: int) -> None:
    real = SqliteOnlineStore.online_write_batch
    calls = 0

    def write_batch(self, config, table, data, progress):
        nonlocal calls
        calls += 1
        if calls == n:
            rows = list(data)
            written = 0

            def then_die(done: int) -> None:  # Feast reports each entity row it has upserted
                nonlocal written
                written += done
                if written >= len(rows) // 2:
                    die()

            return real(self, config, table, rows, then_die)
        return real(self, config, table, data, progress)

    SqliteOnlineStore.online_write_batch = write_batch


def kill_before_registry(n: int) -> None:
    real = Registry.apply_materialization
    calls = 0

    def apply(self, *args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == n:
            die()
        return real(self, *args, **kwargs)

    Registry.apply_materialization = apply


def main() -> None:
    home, month, mode, n = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    {"mid": kill_mid_batch, "registry": kill_before_registry}[mode](n)
    resources = {"platform": PlatformPathsResource(home=str(home)), "feast": FeastResource(platform_home=str(home))}
    result = materialize("online_features", resources, month, raise_on_error=False)
    print("finished", result.success, flush=True)
    sys.exit(3)  # the kill point was never reached


if __name__ == "__main__":
    main()
