"""Run ingestion + validation of one partition in this process and SIGKILL it at the Nth rename.

`python -m tests.reliability.kill_child HOME RAW_DIR PARTITION before|after N`: the process kills
itself with SIGKILL just before (the temp file is complete but not yet visible) or just after the
Nth `os.replace` into HOME, the commit point of every write. Nothing is mocked: the writes, the
rename and the kill are real, and the parent inspects what a reader would see.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def kill_at(home: Path, when: str, n: int) -> None:
    real_replace = os.replace
    seen = 0

    def replace(src, dst, *args, **kwargs):
        nonlocal seen
        inside = Path(dst).resolve().is_relative_to(home.resolve())
        seen += inside
        if inside and seen == n and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, *args, **kwargs)
        if inside and seen == n and when == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace


def main() -> None:
    home, raw_dir, partition, when, n = sys.argv[1:]
    os.environ["PLATFORM_HOME"] = home
    kill_at(Path(home), when, int(n))
    from tests.defs.assets.helpers import materialize

    tables = ["raw_weather", "weather", "raw_flights", "flights"]
    result = materialize(tables, Path(home), Path(raw_dir), partition, raise_on_error=False)
    print("finished", result.success)
    sys.exit(3)  # the kill point was never reached


if __name__ == "__main__":
    main()
