"""Feast's file registry, replaced atomically on every write.

Feast's `FileRegistryStore` truncates registry.db and writes the new bytes in place, so a process
reading the registry meanwhile (a run scoring a month while another run materializes the next one)
can read an empty or half-written file and fail to parse it. This store writes the new registry
beside the old one and renames it over it: a reader sees the old registry or the new one, whole.
feature_repo/feature_store*.yaml name it as their `registry_store_type`.
"""

from __future__ import annotations

import os
import uuid

from feast.infra.registry.file import FileRegistryStore
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.utils import _utc_now


class AtomicFileRegistryStore(FileRegistryStore):
    def update_registry_proto(self, registry_proto: RegistryProto) -> None:
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(_utc_now())
        target = self._filepath
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with open(staged, mode="wb", buffering=0) as f:
                f.write(registry_proto.SerializeToString())
                os.fsync(f.fileno())
            os.replace(staged, target)
        finally:
            staged.unlink(missing_ok=True)
