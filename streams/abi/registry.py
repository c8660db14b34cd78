"""Schema registries: the file registry in the repo, or a Confluent Schema Registry.

Subjects follow Confluent's RecordNameStrategy (subject = record full name, e.g.
``rspp.events.Envelope``), so one subject serves every topic. The file registry
(``avro/registry.json``) keeps every released version of every subject with its
schema, so old frames stay decodable and the compat gate has a history. Its ids
are derived from the schema fingerprint, so two branches never hand out the same
id for different schemas and no coordination is needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from streams.abi.errors import RegistryError
from streams.abi.schemas import avro_dir, fingerprint, schema_id_for

__all__ = [
    "ConfluentRegistry",
    "FileRegistry",
    "SchemaRegistry",
    "SchemaVersion",
    "default_registry",
]

Json = Any
REGISTRY_FILE = "registry.json"
_FORMAT = 1


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    """One registered version of a subject."""

    subject: str
    version: int
    schema_id: int
    schema: Json
    abi_version: str | None = None

    @property
    def label(self) -> str:
        abi = f", ABI {self.abi_version}" if self.abi_version else ""
        return f"{self.subject} v{self.version} (id {self.schema_id}{abi})"


class SchemaRegistry(Protocol):
    """What the codec and the compat gate need from a registry."""

    def register(self, subject: str, schema: Json) -> int:
        """The id of ``schema`` under ``subject``, registering it if needed."""
        ...

    def schema_by_id(self, schema_id: int) -> Json | None:
        """The schema with ``schema_id``, or None if unknown."""
        ...

    def versions(self, subject: str) -> list[SchemaVersion]:
        """Every version of ``subject``, oldest first (empty if unknown)."""
        ...

    def subjects(self) -> list[str]:
        """Every subject with at least one version."""
        ...


class FileRegistry:
    """The registry stored in ``avro/registry.json``.

    ``register`` never writes: a working-tree schema gets its deterministic id in
    memory; :meth:`record` appends a released version and saves the file.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else avro_dir() / REGISTRY_FILE
        self._subjects: dict[str, list[SchemaVersion]] = {}
        self._by_id: dict[int, Json] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            document = orjson.loads(self.path.read_bytes())
            for subject, entries in document["subjects"].items():
                versions = [
                    SchemaVersion(
                        subject=subject,
                        version=int(entry["version"]),
                        schema_id=int(entry["id"]),
                        schema=entry["schema"],
                        abi_version=entry.get("abi_version"),
                    )
                    for entry in entries
                ]
                self._subjects[subject] = sorted(versions, key=lambda v: v.version)
                for v in versions:
                    self._by_id[v.schema_id] = v.schema
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"{self.path}: unreadable registry: {exc}") from None

    def register(self, subject: str, schema: Json) -> int:
        schema_id = schema_id_for(schema)
        known = self._by_id.get(schema_id)
        if known is not None and fingerprint(known) != fingerprint(schema):
            raise RegistryError(
                f"{self.path}: schema id {schema_id} collides with a different schema"
            )
        self._by_id[schema_id] = schema
        return schema_id

    def schema_by_id(self, schema_id: int) -> Json | None:
        return self._by_id.get(schema_id)

    def versions(self, subject: str) -> list[SchemaVersion]:
        return list(self._subjects.get(subject, ()))

    def subjects(self) -> list[str]:
        return sorted(s for s, versions in self._subjects.items() if versions)

    def record(self, subject: str, schema: Json, *, abi_version: str) -> SchemaVersion:
        """Append ``schema`` as the next version of ``subject`` (no-op if it is the latest)."""
        existing = self._subjects.setdefault(subject, [])
        schema_id = self.register(subject, schema)
        if existing and existing[-1].schema_id == schema_id:
            return existing[-1]
        version = SchemaVersion(
            subject=subject,
            version=(existing[-1].version + 1) if existing else 1,
            schema_id=schema_id,
            schema=schema,
            abi_version=abi_version,
        )
        existing.append(version)
        self.save()
        return version

    def save(self) -> None:
        document = {
            "format": _FORMAT,
            "subjects": {
                subject: [
                    {
                        "version": v.version,
                        "id": v.schema_id,
                        "abi_version": v.abi_version,
                        "schema": v.schema,
                    }
                    for v in versions
                ]
                for subject, versions in sorted(self._subjects.items())
            },
        }
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        tmp.replace(self.path)


class ConfluentRegistry:
    """A Confluent Schema Registry through ``confluent_kafka.schema_registry``."""

    def __init__(self, url: str, *, config: dict[str, str] | None = None) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.url = url
        # new_client serves ``mock://`` URLs from confluent-kafka's in-memory mock (tests, demos).
        try:
            self._client = SchemaRegistryClient.new_client({"url": url, **(config or {})})
        except Exception as exc:
            raise RegistryError(f"schema registry {url}: {exc}") from None

    def register(self, subject: str, schema: Json) -> int:
        from confluent_kafka.schema_registry import Schema

        try:
            return int(
                self._client.register_schema(subject, Schema(orjson.dumps(schema).decode(), "AVRO"))
            )
        except Exception as exc:
            raise RegistryError(
                f"schema registry {self.url}: cannot register {subject}: {exc}"
            ) from None

    def schema_by_id(self, schema_id: int) -> Json | None:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            found = self._client.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return None
            raise RegistryError(
                f"schema registry {self.url}: schema id {schema_id}: {exc}"
            ) from None
        except Exception as exc:
            raise RegistryError(
                f"schema registry {self.url}: schema id {schema_id}: {exc}"
            ) from None
        return orjson.loads(str(found.schema_str))

    def versions(self, subject: str) -> list[SchemaVersion]:
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        try:
            numbers = self._client.get_versions(subject)
            registered = [self._client.get_version(subject, n) for n in sorted(numbers)]
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                return []
            raise RegistryError(f"schema registry {self.url}: subject {subject}: {exc}") from None
        except Exception as exc:
            raise RegistryError(f"schema registry {self.url}: subject {subject}: {exc}") from None
        return [
            SchemaVersion(
                subject=subject,
                version=int(r.version or 0),
                schema_id=int(r.schema_id or 0),
                schema=orjson.loads(str(r.schema.schema_str)),
            )
            for r in registered
        ]

    def subjects(self) -> list[str]:
        try:
            return sorted(str(s) for s in self._client.get_subjects())
        except Exception as exc:
            raise RegistryError(
                f"schema registry {self.url}: cannot list subjects: {exc}"
            ) from None


def default_registry() -> SchemaRegistry:
    """``RSPP_SCHEMA_REGISTRY_URL`` if set, else the file registry under ``avro/``."""
    url = os.environ.get("RSPP_SCHEMA_REGISTRY_URL", "").strip()
    if url:
        return ConfluentRegistry(url)
    return FileRegistry()
