"""A Dagster-centred ML asset platform: raw data to drift reports as one lineage graph."""

import warnings

# dagster-dbt depends on `sqlglot[rs]`; with sqlglot pinned below 30 (constraints.txt: 30 breaks
# Feast's DuckDB store) sqlglot warns at import that its Rust tokenizer extra is deprecated. The
# pure-Python tokenizer it falls back to is what runs either way.
warnings.filterwarnings("ignore", message=r"sqlglot\[rs\] is deprecated", category=UserWarning)
