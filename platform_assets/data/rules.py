"""Row rules defined once as polars expressions, used two ways.

`Contract.pandera_schema()` turns them into a `pandera.polars` schema: the documented contract and
the oracle the tests compare against. `Contract.split()` evaluates every rule in one polars pass and
routes failing rows to quarantine with the names of the rules they broke, which is what the
validation assets run (pandera evaluates each check as its own query and reports failures as a long
table, several times slower on a full month).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    import pandera.polars as pa

from platform_assets.data.tables import TableSpec

CAST_RULE = "values_parse_as_declared_types"
UNIQUE_RULE = "unique_key"
DUPLICATE_RULE = "duplicate_row"
EXTRA_COPY, KEY_CONFLICT = "__extra_copy", "__key_conflict"


class StructuralError(ValueError):
    """The frame cannot be validated row by row: a column is missing or has the wrong type."""

    def __init__(self, file: str, column: str, rule: str, detail: str):
        self.file, self.column, self.rule, self.detail = file, column, rule, detail
        super().__init__(f"file {file}, column '{column}': rule '{rule}' broken: {detail}")


@dataclass(frozen=True)
class Rule:
    """`passes` is True for rows that satisfy the rule; null counts as a pass (nullability is its own rule)."""

    name: str
    passes: pl.Expr
    description: str
    column: str | None = None


@dataclass(frozen=True, eq=False)
class Contract:
    spec: TableSpec
    rules: Sequence[Rule]
    nullable: frozenset[str] = field(default_factory=frozenset)

    @property
    def all_rules(self) -> list[Rule]:
        """Declared rules plus those implied by the spec: not-null, parseable values, unique key."""
        not_null = [
            Rule(f"{c}_not_null", pl.col(c).is_not_null(), f"{c} is required", column=c)
            for c in self.spec.columns
            if c not in self.nullable
        ]
        return not_null + list(self.rules) + self._implied_rules(flags=True)

    def _implied_rules(self, flags: bool) -> list[Rule]:
        """A re-sent row is one observation: its first copy stays valid and only the extra copies
        are quarantined. Rows sharing a key but differing in any value cannot both be right, so
        every version of a conflicting key is quarantined.

        `flags=True` reads the duplicate flags `split` computes on the rows whose key repeats (the
        same answer, without a window over every row); `False` gives the expressions pandera runs.
        """
        key = ", ".join(self.spec.key)
        values = pl.struct([*self.spec.columns, "_cast_errors"])
        if flags:
            first_copy, consistent = ~pl.col(EXTRA_COPY), ~pl.col(KEY_CONFLICT)
        else:
            first_copy = values.is_first_distinct()
            consistent = ~pl.struct(list(self.spec.key)).is_duplicated() | (
                values.n_unique().over(self.spec.key) == 1
            )
        return [
            Rule(CAST_RULE, pl.col("_cast_errors").is_null(), "every value parses as its declared type"),
            Rule(DUPLICATE_RULE, first_copy, "not an exact copy of an earlier row (the first copy stays valid)"),
            Rule(
                UNIQUE_RULE,
                consistent,
                f"rows sharing ({key}) hold the same values; every version of a conflicting key is quarantined",
            ),
        ]

    def _duplicate_flags(self, frame: pl.DataFrame) -> pl.DataFrame:
        key = list(self.spec.key)
        shared = frame.select(pl.struct(key).is_duplicated()).to_series()
        extra = pl.Series(EXTRA_COPY, [False] * frame.height, dtype=pl.Boolean)
        conflict = pl.Series(KEY_CONFLICT, [False] * frame.height, dtype=pl.Boolean)
        if shared.any():
            values = pl.struct([*self.spec.columns, "_cast_errors"])
            # copies and conflicts share their key, so the rows whose key repeats decide alone
            repeated = (
                frame.with_row_index("__i")
                .filter(shared)
                .select(
                    "__i",
                    (~values.is_first_distinct()).alias(EXTRA_COPY),
                    (values.n_unique().over(key) > 1).alias(KEY_CONFLICT),
                )
            )
            extra = extra.scatter(repeated["__i"], repeated[EXTRA_COPY])
            conflict = conflict.scatter(repeated["__i"], repeated[KEY_CONFLICT])
        return frame.with_columns(extra, conflict)

    def check_structure(self, frame: pl.DataFrame, file: str) -> None:
        for column, dtype in self.spec.columns.items():
            if column not in frame.columns:
                raise StructuralError(file, column, "required column", "column is missing")
            if frame.schema[column] != dtype:
                raise StructuralError(
                    file, column, f"dtype {dtype}", f"found {frame.schema[column]}, cannot validate"
                )

    def split(self, frame: pl.DataFrame, file: str) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(valid rows, quarantined rows with `_rules_failed`): every input row lands in exactly one."""
        self.check_structure(frame, file)
        flagged = self._duplicate_flags(frame)
        rules = self.all_rules
        failed = [(~r.passes).fill_null(False) for r in rules]
        mask = flagged.lazy().select(pl.any_horizontal(failed)).collect().to_series()
        if not mask.any():
            return frame, frame.clear().with_columns(pl.lit(None, pl.String()).alias("_rules_failed"))
        # Reasons are only computed for the quarantined rows, but on the full frame because
        # uniqueness depends on every row.
        reasons = pl.concat_str(
            [pl.when(f).then(pl.lit(r.name)) for r, f in zip(rules, failed)],
            separator="; ",
            ignore_nulls=True,
        )
        bad = (
            flagged.lazy()
            .with_columns(reasons.alias("_rules_failed"))
            .filter(mask)
            .drop(EXTRA_COPY, KEY_CONFLICT)
            .collect()
        )
        valid = frame.filter(~mask)
        return valid, bad

    def pandera_schema(self) -> pa.DataFrameSchema:
        import pandera.polars as pa

        def as_check(rule: Rule) -> pa.Check:
            return pa.Check(
                lambda data, expr=rule.passes: data.lazyframe.select(expr.fill_null(True)),
                name=rule.name,
                error=rule.description,
            )

        declared = [r for r in self.rules]
        columns = {
            c: pa.Column(
                dtype,
                nullable=c in self.nullable,
                checks=[as_check(r) for r in declared if r.column == c],
            )
            for c, dtype in self.spec.columns.items()
        }
        frame_checks = [as_check(r) for r in [*declared, *self._implied_rules(flags=False)] if r.column is None]
        return pa.DataFrameSchema(
            columns,
            checks=frame_checks,
            strict=False,
            name=self.spec.name,
        )


def key_conflicts(quarantined: pl.DataFrame, spec: TableSpec, limit: int = 10) -> list[str]:
    """The conflicting keys among quarantined rows, each with the columns whose values disagree."""
    if quarantined.height == 0:
        return []
    rows = quarantined.filter(pl.col("_rules_failed").str.split("; ").list.contains(UNIQUE_RULE))
    if rows.height == 0:
        return []
    compared = [c for c in spec.columns if c not in spec.key]
    groups = (
        rows.group_by(list(spec.key), maintain_order=True)
        .agg(
            pl.col("_source_row").alias("rows"),
            *(pl.col(c).n_unique().alias(f"__n_{c}") for c in compared),
        )
        .head(limit)
    )
    described = []
    for group in groups.iter_rows(named=True):
        key = ", ".join(f"{c}={group[c]}" for c in spec.key)
        differing = [c for c in compared if group[f"__n_{c}"] > 1]
        described.append(f"({key}) rows {group['rows']} differ in {differing}")
    return described


def rule_counts(quarantined: pl.DataFrame) -> Mapping[str, int]:
    if quarantined.height == 0:
        return {}
    counts = (
        quarantined.select(pl.col("_rules_failed").str.split("; ").alias("rule"))
        .explode("rule")
        .group_by("rule")
        .len()
        .sort("len", descending=True)
    )
    return dict(zip(counts["rule"].to_list(), counts["len"].to_list()))
