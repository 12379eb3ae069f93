"""Online reads of a feature service: `OnlineReader`, what the model server reads per request.

It returns what Feast's `get_online_features` returns, reading the views from Feast's registry and
Feast's online store, without the per-value work of Feast's response protos; on Feast's SQLite
online store it selects the rows itself (`_SqliteReads`). Feast itself is imported by the caller's
FeatureStore.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from platform_assets.featurestore.services import service_features, service_join_keys

if TYPE_CHECKING:
    from feast import FeatureStore, FeatureView
    from feast.protos.feast.types.Value_pb2 import Value


# Value kinds read as they are; Feast's general converter gives the same Python values but costs
# more than the store read itself for a hundred rows.
_SCALARS = frozenset({"double_val", "float_val", "int32_val", "int64_val", "bool_val", "string_val"})
# Distinct entity keys whose serialized form is kept (a few hundred bytes each at most): far more
# than the reference data's planes, routes, carriers and airports together.
_KEY_CACHE_SIZE = 200_000
# Distinct serialized values whose Python value is kept (a few bytes each): a view's values repeat
# across entities and requests (a plane's seats and engines, a carrier's counts, an airport's hour).
_VALUE_CACHE_SIZE = 200_000
# The SELECT texts kept per reader, one per view and power of two of entities (a bound only).
_STATEMENT_CACHE_SIZE = 1_024


def python_value(value: Value) -> Any:
    """The Python value of a stored feature value, None when it is unset (as Feast's to_dict)."""
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in _SCALARS:
        return getattr(value, kind)
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)


@dataclass(frozen=True)
class _ViewRead:
    view: FeatureView
    join_keys: tuple[str, ...]
    """The view's own key names, as the store keys its rows."""
    request_keys: tuple[str, ...]
    """The columns of the request holding them (the service may map a key to another name)."""
    key_types: tuple[Any, ...]
    features: tuple[str, ...]

    def entities(self, keys: Mapping[str, Sequence[Any]]) -> Sequence[Any]:
        """The request's entity per row: the key's value for a view with one join key (no tuple
        made per row), else the tuple of the view's key values."""
        if len(self.request_keys) == 1:
            return keys[self.request_keys[0]]
        return list(zip(*(keys[k] for k in self.request_keys)))

    def entity_keys(self, distinct: Sequence[Any]) -> list[Any]:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import python_values_to_proto_values

        rows = distinct if len(self.join_keys) > 1 else [(v,) for v in distinct]
        columns = [
            python_values_to_proto_values([row[i] for row in rows], value_type)
            for i, value_type in enumerate(self.key_types)
        ]
        return [EntityKey(join_keys=self.join_keys, entity_values=values) for values in zip(*columns)]


class OnlineReader:
    """A feature service's latest online values: one online-store read per feature view for all the
    requested rows, each distinct entity read once.

    Returns what `store.get_online_features(features=service, entity_rows=...)` returns (plain
    feature names, None where the store has no value) without building Feast's response protos
    value by value. The views are resolved when the reader is made, as the server fixes its service
    at start. On Feast's SQLite online store a view is one SELECT of the requested entities' rows,
    with serialized keys and decoded values kept between requests; any other store goes through its
    own batched `online_read`.
    """

    def __init__(self, store: FeatureStore, service: str) -> None:
        from feast import ValueType

        self.store = store
        self.features = service_features(store, service)
        self.join_keys = service_join_keys(store, service)
        reads = []
        for projection in store.get_feature_service(service).feature_view_projections:
            view = store.get_feature_view(projection.name)
            types = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
            reads.append(
                _ViewRead(
                    view=view,
                    join_keys=tuple(view.join_keys),
                    request_keys=tuple(projection.join_key_map.get(k, k) for k in view.join_keys),
                    key_types=tuple(types.get(k, ValueType.UNKNOWN) for k in view.join_keys),
                    features=tuple(f.name for f in projection.features),
                )
            )
        self._reads = reads
        self._sqlite = _SqliteReads(store, reads) if _is_sqlite(store) else None

    def read(self, keys: Mapping[str, Sequence[Any]], generic: bool = False) -> dict[str, list[Any]]:
        """Feature values by name, one per row, for rows given as join key columns of equal length.

        `generic=True` reads through the store's `online_read` even on SQLite (the tests compare both).
        """
        lengths = {k: len(keys[k]) for read in self._reads for k in read.request_keys}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"join key columns differ in length: {lengths}")
        out: dict[str, list[Any]] = {}
        for read in self._reads:
            rows = read.entities(keys)
            distinct = list(dict.fromkeys(rows))
            # Repeated entities: each row takes its entity's values, by position among the distinct.
            at = None
            if len(distinct) < len(rows):
                at = list(map(dict(zip(distinct, range(len(distinct)))).__getitem__, rows))
            if not distinct:
                values: dict[str, list[Any]] = {name: [] for name in read.features}
            elif self._sqlite is not None and not generic:
                values = self._sqlite.read(read, distinct)
            else:
                values = self._online_read(read, distinct)
            if at is not None:  # at least two rows, so itemgetter gives a tuple
                take = itemgetter(*at)
                values = {name: list(take(column)) for name, column in values.items()}
            out |= values
        return {name: out[name] for name in self.features}

    def _online_read(self, read: _ViewRead, distinct: list[Any]) -> dict[str, list[Any]]:
        # The provider's online_read is the store's own batched read (one pipeline for Redis);
        # FeatureStore has no public handle on it.
        found = self.store._get_provider().online_read(
            config=self.store.config,
            table=read.view,
            entity_keys=read.entity_keys(distinct),
            requested_features=list(read.features),
        )
        values: dict[str, list[Any]] = {name: [None] * len(distinct) for name in read.features}
        for i, (_, stored) in enumerate(found):
            if stored:
                for name, column in values.items():
                    if name in stored:
                        column[i] = python_value(stored[name])
        return values


def _is_sqlite(store: FeatureStore) -> bool:
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    return isinstance(getattr(store._get_provider(), "online_store", None), SqliteOnlineStore)


class _Decoded(dict):
    """Python values of serialized feature values, by their bytes; None (no row) reads as None.

    A value is parsed the first time its bytes are met and kept when it is a scalar (an immutable
    int, float, str or bool, or None when unset); any other kind (lists, bytes, timestamps) is
    converted anew for every entity, so no two entities share a mutable value.
    """

    def __init__(self) -> None:
        from feast.protos.feast.types.Value_pb2 import Value

        super().__init__({None: None})
        self._parse = Value.FromString

    def __missing__(self, blob: bytes | None) -> Any:
        if blob is None:  # another thread cleared the values kept
            return None
        value = self._parse(blob)
        kind = value.WhichOneof("val")
        if kind is not None and kind not in _SCALARS:
            return python_value(value)
        result = None if kind is None else getattr(value, kind)
        if len(self) > _VALUE_CACHE_SIZE:
            self.clear()
            self[None] = None
        self[blob] = result
        return result


class _SqliteReads:
    """Feast's SQLite online store read directly: a table per view, a row per (entity key, feature)
    holding a serialized Value. Feast's own online_read also parses every row's timestamp and
    serializes every key again; those, not the query, were most of a 100-row request. The equality
    tests against get_online_features pin the layout."""

    def __init__(self, store: FeatureStore, reads: Sequence[_ViewRead]) -> None:
        import sqlite3

        from feast.infra.online_stores.sqlite import _quote_id, _table_id

        config = store.config
        online_store = store._get_provider().online_store  # type: ignore[attr-defined]
        # The store's own connection (opened with check_same_thread=False), as its online_read uses.
        self.conn = online_store._get_conn(config)
        self.version = config.entity_key_serialization_version
        versioned = config.registry.enable_online_feature_view_versioning
        self.tables = {
            read.view.name: _quote_id(_table_id(config.project, read.view, versioned)) for read in reads
        }
        self.keys: dict[str, dict[Any, bytes]] = {}
        self.decoded = _Decoded()
        self._statements: dict[tuple[str, int, int], str] = {}
        self.max_keys = self.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)

    def serialized(self, read: _ViewRead, distinct: Sequence[Any]) -> list[bytes]:
        from feast.infra.key_encoding_utils import serialize_entity_key

        known = self.keys.setdefault(read.view.name, {})
        out = list(map(known.get, distinct))
        if None in out:
            if len(known) > _KEY_CACHE_SIZE:
                known.clear()
            new = [i for i, key in enumerate(out) if key is None]
            protos = read.entity_keys([distinct[i] for i in new])
            for i, proto in zip(new, protos):
                out[i] = known[distinct[i]] = serialize_entity_key(proto, self.version)
        return out  # type: ignore[return-value]

    def select(self, read: _ViewRead, entities: int, first: int = 0) -> str:
        """Each stored value of the entities' rows with its place among the view's values for the
        request: entity i (counted from `first`) times the number of features, plus the feature's
        position; NULL for a feature the service leaves out (Feast's own read fetches those too).

        One index search per entity (the table's index on entity_key), where a lookup of each
        (entity, feature) would search once per value; the row order does not matter."""
        statement = self._statements.get((read.view.name, entities, first))
        if statement is None:
            width = len(read.features)
            position = " ".join(f"WHEN {_literal(name)} THEN {j}" for j, name in enumerate(read.features))
            entity = ", ".join(f"({(first + i) * width}, ?)" for i in range(entities))
            statement = (
                f"SELECT k.column1 + CASE t.feature_name {position} END, t.value "
                f"FROM (VALUES {entity}) AS k CROSS JOIN {self.tables[read.view.name]} AS t "
                "ON t.entity_key = k.column2"
            )
            if len(self._statements) >= _STATEMENT_CACHE_SIZE:
                self._statements.clear()
            self._statements[read.view.name, entities, first] = statement
        return statement

    def read(self, read: _ViewRead, distinct: Sequence[Any]) -> dict[str, list[Any]]:
        """The view's features for the distinct entities."""
        width = len(read.features)
        if not width:
            return {}
        keys = self.serialized(read, distinct)
        found: dict[int, bytes] = {}
        for first in range(0, len(keys), self.max_keys):  # once, unless more keys than a statement binds
            part = keys[first : first + self.max_keys]
            # The statement for a power of two entities, the rest NULL keys that match no row: a few
            # statements per view, which stay in sqlite3's cache of prepared statements (128, shared
            # with Feast's own reads on this connection) where one per request size would not.
            size = min(1 << (len(part) - 1).bit_length(), self.max_keys)
            found.update(self.conn.execute(self.select(read, size, first), part + [None] * (size - len(part))))
        # Entity by entity, each feature's value or None (no row), decoded; then by feature.
        values = list(map(self.decoded.__getitem__, map(found.get, range(len(keys) * width))))
        return {name: values[j::width] for j, name in enumerate(read.features)}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
