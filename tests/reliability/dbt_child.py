"""`python -m tests.reliability.dbt_child HOME RAW_DIR MONTH`: the warehouse's `dbt build` of one
month, as the warehouse asset runs it; the parent test SIGKILLs its process group midway."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg

from platform_assets.defs.warehouse.assets import warehouse_models
from platform_assets.lib.dbt import dbt_resource
from tests.defs.assets.helpers import resources


def main() -> None:
    home, raw_dir, month = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    dbt = dbt_resource("local")
    result = dg.materialize(
        [warehouse_models], partition_key=month, resources={**resources(home, raw_dir), "dbt": dbt}, raise_on_error=False
    )
    print("finished", result.success, flush=True)
    sys.exit(0 if result.success else 1)


if __name__ == "__main__":
    main()
