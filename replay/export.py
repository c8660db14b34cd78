"""``rspp export``: recorded turns as Avro object container files + bundles + manifest.

One container file per log partition (records in offset order, so epoch
fencing can be re-checked from the file alone), the Envelope schema as the
container schema with the payload union intact. Next to them: every bundle a
recorded plan references, and ``manifest.json`` (ReplayEvidenceManifest-shaped:
the L0 requirements plus the prefix, the Kafka cluster id, each partition's
offsets, the turns per (tenant, session) and the sha256 of each file; optionally
Ed25519-signed). Replay checks an export against its manifest
(:mod:`replay.verify`). Exports are the fixtures replay jobs keep in their
repositories.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from fastavro.write import Writer

from pipelines.bundles import bundle_json
from replay.bundles import BundleIndex, source_bundle_dirs
from replay.errors import LogSourceError, ReplayError
from replay.evidence import load_rules
from replay.model import Position
from replay.sources import (
    MANIFEST,
    META_CLUSTER,
    META_PARTITION,
    META_PREFIX,
    META_SESSION,
    META_TENANT,
    META_TOPIC,
    LogSource,
    envelope_schema,
)
from replay.verify import load_signing_key, sign_manifest
from streams.abi.events import Envelope, EventType, TurnClose, TurnOpen
from streams.abi.records import envelope_to_record
from streams.abi.schemas import fingerprint
from streams.abi.version import ABI_VERSION

__all__ = ["CODECS", "ContainerWriter", "export_log", "read_manifest"]

CODECS = ("deflate", "zstandard", "null")
_CODEC_ALIASES = {"zstd": "zstandard"}


def _codec(name: str) -> str:
    codec = _CODEC_ALIASES.get(name, name)
    if codec not in CODECS:
        raise ReplayError(f"unknown codec {name!r} (expected deflate, zstd or null)")
    return codec


class ContainerWriter:
    """Appends envelopes to one container file; deterministic bytes for equal input."""

    def __init__(self, path: Path, *, codec: str = "deflate", metadata: dict[str, str]) -> None:
        self.path = path
        self.records = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: BinaryIO = path.open("wb")
        # A sync marker derived from the metadata keeps golden exports byte-stable.
        marker = hashlib.sha256(orjson.dumps(metadata, option=orjson.OPT_SORT_KEYS)).digest()[:16]
        # 1 MiB blocks: plans of neighbouring turns are near-identical, so large blocks
        # compress them several-fold better than fastavro's 16 KiB default.
        self._writer = Writer(self._handle, envelope_schema(), codec=_codec(codec),
                              metadata=dict(metadata), sync_marker=marker, sync_interval=1 << 20)

    def write(self, env: Envelope) -> None:
        self._writer.write(envelope_to_record(env))
        self.records += 1

    def close(self) -> str:
        """Flush, close and return the file's sha256."""
        self._writer.flush()
        self._handle.close()
        return "sha256:" + hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(slots=True)
class _TurnInfo:
    turn_id: str
    first: str
    events: int = 0
    plan_hash: str | None = None
    bundle_digest: str | None = None
    outcome: str | None = None
    last: str = ""


@dataclass(slots=True)
class _SessionInfo:
    tenant_id: str
    bundle_id: str | None = None
    partition: int = 0
    turns: dict[str, _TurnInfo] = field(default_factory=dict)


def _add_offset(runs: list[list[int]], offset: int) -> None:
    # Contiguous runs keep the manifest small: transaction markers are the only holes.
    if runs and runs[-1][1] + 1 == offset:
        runs[-1][1] = offset
    else:
        runs.append([offset, offset])


def export_log(source: LogSource, out: Path, *, prefix: str, codec: str = "deflate",
               tenant: str | None = None, session: str | None = None,
               bundle_dirs: Iterable[Path] = (), sign_key: Path | None = None) -> dict[str, Any]:
    """Write ``source`` under ``out``; returns the manifest (also written as manifest.json).

    ``sign_key`` (an Ed25519 private key PEM) signs the manifest.
    """
    signer = load_signing_key(sign_key) if sign_key is not None else None  # fail before reading
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[int, ContainerWriter] = {}
    offsets: dict[int, list[list[int]]] = {}
    sessions: dict[tuple[str, str], _SessionInfo] = {}  # (tenant, session)
    topic = f"{prefix}.log"
    records = iter(source)  # the cluster id is known once reading has started
    for pos, env in records:
        writer = writers.get(pos.partition)
        if writer is None:
            meta = {META_PREFIX: prefix, META_TOPIC: topic, META_PARTITION: str(pos.partition),
                    META_TENANT: tenant or "", META_SESSION: session or "",
                    META_CLUSTER: _cluster_id(source) or ""}
            name = f"{topic}.p{pos.partition}.avro"
            writer = writers[pos.partition] = ContainerWriter(out / name, codec=codec, metadata=meta)
            offsets[pos.partition] = []
        _add_offset(offsets[pos.partition], pos.offset)
        _note(sessions, pos, env, writer.records)
        writer.write(env)
    files: list[dict[str, Any]] = []
    for partition in sorted(writers):
        w = writers[partition]
        digest = w.close()
        runs = offsets[partition]
        files.append({"path": w.path.name, "partition": partition, "records": w.records,
                      "first_offset": runs[0][0], "last_offset": runs[-1][1],
                      "sha256": digest, "bytes": w.path.stat().st_size})
    partitions = _partitions(source, writers, offsets)
    bundles = _copy_bundles(sessions, out, BundleIndex([*bundle_dirs, *source_bundle_dirs(source)]))
    rules = load_rules()
    manifest: dict[str, Any] = {
        "apiVersion": "rspp.dev/v1",
        "kind": "ReplayEvidenceManifest",
        "metadata": {"name": f"export-{prefix}", "version": "1.0.0"},
        "or02_evidence_schema_version": rules.artifact.or02_evidence_schema_version,
        "recording_level": rules.artifact.recording_level,
        "required_fields": [r.model_dump(mode="json") for r in rules.artifact.required_fields],
        "export": {"prefix": prefix, "topic": topic, "cluster_id": _cluster_id(source),
                   "codec": _codec(codec), "tenant": tenant,
                   "session": session, "abi_version": ABI_VERSION,
                   "schema_fingerprint": fingerprint(envelope_schema()),
                   "events": sum(w.records for w in writers.values())},
        "files": files,
        "partitions": partitions,
        "bundles": bundles,
        "sessions": [_session_dict(sid, s) for (_, sid), s in sessions.items()],
    }
    if signer is not None:
        manifest = sign_manifest(manifest, signer)
    (out / MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    return manifest


def _cluster_id(source: LogSource) -> str | None:
    value = getattr(source, "cluster_id", None)
    return value if isinstance(value, str) and value else None


def _partitions(source: LogSource, writers: dict[int, ContainerWriter],
                offsets: dict[int, list[list[int]]]) -> list[dict[str, Any]]:
    """Every partition of the topic (empty ones too, so a lost file is noticed)."""
    marks: dict[int, tuple[int, int]] = dict(getattr(source, "watermarks", None) or {})
    out = []
    for p in sorted(set(marks) | set(writers)):
        low, high = marks.get(p, (None, None))
        w = writers.get(p)
        out.append({"partition": p, "file": w.path.name if w else None,
                    "records": w.records if w else 0, "offsets": offsets.get(p, []),
                    "log_start": low, "log_end": high})
    return out


def _note(
    sessions: dict[tuple[str, str], _SessionInfo], pos: Position, env: Envelope, index: int
) -> None:
    key = (env.tenant_id, env.session_id)
    info = sessions.get(key)
    if info is None:
        info = sessions[key] = _SessionInfo(env.tenant_id, partition=pos.partition)
    if env.event_type is EventType.ADMIT:
        info.bundle_id = env.bundle_id
    if env.turn_id is None:
        return
    where = f"{pos} (record {index})"
    turn = info.turns.get(env.turn_id)
    if turn is None:
        turn = info.turns[env.turn_id] = _TurnInfo(env.turn_id, first=where)
    turn.events += 1
    turn.last = where
    payload = env.payload
    if isinstance(payload, TurnOpen):
        turn.plan_hash = payload.plan_hash
        try:
            turn.bundle_digest = str(orjson.loads(payload.plan_json).get("bundle_digest"))
        except (orjson.JSONDecodeError, AttributeError):
            turn.bundle_digest = None  # replay reports the unreadable plan; export stays lossless
    elif isinstance(payload, TurnClose):
        turn.outcome = payload.outcome.value


def _session_dict(session_id: str, s: _SessionInfo) -> dict[str, Any]:
    return {"session_id": session_id, "tenant_id": s.tenant_id, "bundle_id": s.bundle_id,
            "partition": s.partition,
            "turns": [{"turn_ref": f"{s.tenant_id}/{session_id}/{t.turn_id}", "turn_id": t.turn_id,
                       "plan_hash": t.plan_hash, "bundle_digest": t.bundle_digest,
                       "outcome": t.outcome, "events": t.events, "first": t.first, "last": t.last}
                      for t in s.turns.values()]}


def _copy_bundles(sessions: dict[tuple[str, str], _SessionInfo], out: Path,
                  index: BundleIndex) -> list[dict[str, str]]:
    digests = sorted({t.bundle_digest for s in sessions.values() for t in s.turns.values()
                      if t.bundle_digest})
    copied = []
    for digest in digests:
        bundle = index.get(digest, wanted_by=" (referenced by a recorded plan)")
        data = bundle_json(bundle)
        name = f"bundles/{bundle.metadata.name}-{bundle.metadata.version}.json"
        (out / "bundles").mkdir(exist_ok=True)
        (out / name).write_bytes(data)
        copied.append({"bundle_id": bundle.ref, "digest": digest, "path": name,
                       "sha256": "sha256:" + hashlib.sha256(data).hexdigest()})
    return copied


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        doc = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise LogSourceError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files"), list):
        raise LogSourceError(f"{path}: not an export manifest (no 'files' list)")
    return doc
