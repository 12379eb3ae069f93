"""Checks on the parquet tables Feast reads, run before anything is written from them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import FeatureView


class FeatureTableError(ValueError):
    """A feature table that Feast must not read: the message names the file, column and rule."""


@dataclass(frozen=True)
class TableContract:
    path: Path
    keys: tuple[str, ...]
    """Entity keys and event timestamp: present and never null, or rows would vanish from joins."""
    columns: tuple[str, ...]
    """Other columns that must be present."""


def view_contract(view: FeatureView) -> TableContract:
    source = view.batch_source
    return TableContract(
        path=Path(source.path),
        keys=(*view.join_keys, source.timestamp_field),
        columns=tuple(f.name for f in view.features),
    )


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def check_table(contract: TableContract) -> int:
    """Raise FeatureTableError unless the file exists, has every column and no null key; return rows."""
    import duckdb
    import pyarrow.parquet as pq

    path = contract.path
    if not path.is_file():
        raise FeatureTableError(f"{path}: file not found (rule: feature table exists; build the warehouse first)")
    try:
        names = set(pq.read_schema(path).names)
    except Exception as error:
        raise FeatureTableError(f"{path}: not a readable parquet file ({error})") from error
    for column in (*contract.keys, *contract.columns):
        if column not in names:
            raise FeatureTableError(f"{path}: column {column!r} is missing (rule: required column)")
    null_counts = ", ".join(f'count(*) filter (where "{k}" is null)' for k in contract.keys)
    with duckdb.connect() as con:
        query = f"select count(*), {null_counts} from read_parquet('{_sql_path(path)}')"
        rows, *nulls = con.execute(query).fetchone()
    for column, count in zip(contract.keys, nulls):
        if count:
            raise FeatureTableError(
                f"{path}: column {column!r} has {count} null value(s) of {rows} "
                "(rule: entity keys and event timestamps are never null)"
            )
    return rows


def entities_in_window(contract: TableContract, start: datetime, end: datetime) -> int:
    """Entities with a row in [start, end]: what materializing that window writes (one row each)."""
    import duckdb

    *keys, timestamp = contract.keys
    key_list = ", ".join(f'"{k}"' for k in keys)
    query = (
        f"select count(*) from (select distinct {key_list} from read_parquet('{_sql_path(contract.path)}') "
        f'where "{timestamp}" >= $start and "{timestamp}" <= $end)'
    )
    with duckdb.connect() as con:
        return con.execute(query, {"start": start, "end": end}).fetchone()[0]
