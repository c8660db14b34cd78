"""Log sources: the ``<prefix>.log`` topic (read_committed) and Avro container exports.

Both yield ``(Position, Envelope)`` in log order per partition. Bad input is a
typed :class:`~replay.errors.LogSourceError` whose message names the file and
record index, or the topic, partition and offset.
"""

from __future__ import annotations

import copy
import functools
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import fastavro

from replay.errors import CorruptInputError, ForeignLogError, LogSourceError, TruncatedLogError
from replay.model import Position
from replay.verify import ExportCheck
from streams.abi.codec import EventCodec
from streams.abi.errors import CodecError
from streams.abi.events import Envelope, EventType
from streams.abi.records import envelope_from_record
from streams.abi.schemas import ENVELOPE, fingerprint, load_schema_dir
from streams.config import kafka_settings

__all__ = [
    "MANIFEST",
    "META_CLUSTER",
    "META_PARTITION",
    "META_PREFIX",
    "META_SESSION",
    "META_TENANT",
    "META_TOPIC",
    "SYSTEM_TENANT",
    "ContainerLogSource",
    "KafkaLogSource",
    "LogSource",
    "envelope_schema",
]

META_PREFIX = "rspp.prefix"
META_TOPIC = "rspp.topic"
META_PARTITION = "rspp.partition"
META_TENANT = "rspp.tenant"
META_SESSION = "rspp.session"
META_CLUSTER = "rspp.cluster"
SYSTEM_TENANT = "__system__"
MANIFEST = "manifest.json"


class LogSource(Protocol):
    """Anything that yields the log's records in order; ``name`` appears in reports."""

    name: str

    def __iter__(self) -> Iterator[tuple[Position, Envelope]]: ...


def _without_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_docs(v) for k, v in node.items() if k != "doc"}
    if isinstance(node, list):
        return [_without_docs(v) for v in node]
    return node


@functools.cache
def _envelope_schema() -> Any:
    return _without_docs(load_schema_dir().compose(ENVELOPE))


def envelope_schema() -> Any:
    """The composed Envelope schema (the container schema of every export).

    Docs are dropped: they are most of the schema's bytes, every container
    header repeats them, and they do not change the parsing canonical form.
    """
    return copy.deepcopy(_envelope_schema())


class _Filter:
    """Session/tenant/time selection that keeps lease records and whole turns.

    A turn is selected by its TURN_OPEN time, so a window never cuts a turn in
    half (which would show up as a lifecycle divergence that is not in the log).
    """

    __slots__ = ("active", "session", "since", "tenant", "turns", "until")

    def __init__(self, *, session: str | None, tenant: str | None,
                 since: datetime | None, until: datetime | None) -> None:
        self.session, self.tenant, self.since, self.until = session, tenant, since, until
        self.turns: set[str] = set()
        self.active = any(v is not None for v in (session, tenant, since, until))

    @classmethod
    def of(cls, window: tuple[str | None, str | None, datetime | None, datetime | None]) -> _Filter:
        session, tenant, since, until = window
        return cls(session=session, tenant=tenant, since=since, until=until)

    def keep(self, env: Envelope) -> bool:
        if env.event_type is EventType.LEASE_GRANTED:
            return True  # epoch fencing needs every grant, whoever's sessions are selected
        if self.session is not None and env.session_id != self.session:
            return False
        if self.tenant is not None and env.tenant_id != self.tenant:
            return False
        if self.since is None and self.until is None:
            return True
        if env.turn_id is not None and env.event_type is not EventType.TURN_OPEN:
            return env.turn_id in self.turns
        inside = (self.since is None or env.ts >= self.since) and (
            self.until is None or env.ts < self.until)
        if inside and env.turn_id is not None:
            self.turns.add(env.turn_id)
        return inside


class ContainerLogSource:
    """Avro object container files: one file, or a directory of ``*.avro`` (an export).

    ``prefix``/``tenant`` name what the caller expects: a file whose metadata says
    otherwise raises :class:`ForeignLogError`; records of other tenants in an
    unscoped export are filtered out. An export is held to its ``manifest.json``
    while it is read; what does not match lands in :attr:`integrity` (one line
    each). Without a manifest the source is unverified, which is itself an
    integrity problem unless ``allow_unverified``. ``verify_key`` (an Ed25519
    public key PEM) requires the manifest to be signed by its private half.
    """

    def __init__(self, path_or_dir: Path | str, *, prefix: str | None = None,
                 tenant: str | None = None, session: str | None = None,
                 since: datetime | None = None, until: datetime | None = None,
                 allow_unverified: bool = False, verify_key: Path | None = None) -> None:
        self.path = Path(path_or_dir)
        self.prefix, self.tenant = prefix, tenant
        self._window = (session, tenant, since, until)
        self.windowed = since is not None or until is not None
        self.allow_unverified, self.verify_key = allow_unverified, verify_key
        self.manifest: dict[str, Any] | None = None
        self.integrity: list[str] = []  # filled while reading; see replay.verify
        self.notes: list[str] = []
        self.files = self._files()
        self.name = str(self.path)

    def _files(self) -> tuple[Path, ...]:
        if self.path.is_file():
            return (self.path,)
        if not self.path.is_dir():
            raise LogSourceError(f"{self.path}: no such file or directory")
        manifest = self.path / MANIFEST
        if manifest.is_file():
            from replay.export import read_manifest

            self.manifest = read_manifest(manifest)
            files = tuple(self.path / str(f["path"]) for f in self.manifest["files"])
        else:
            files = tuple(sorted(self.path.glob("*.avro")))
        if not files:
            raise LogSourceError(f"{self.path}: no .avro container files")
        return files

    def _check(self) -> tuple[ExportCheck | None, tuple[Path, ...]]:
        self.integrity, self.notes = [], []
        if self.manifest is None:
            where = f"{self.path} has no {MANIFEST}" if self.path.is_dir() else \
                f"{self.path.name} is a bare container file"
            if self.verify_key is not None:
                self.integrity.append(f"unverified: no manifest ({where}) to check --verify-key against")
            elif self.allow_unverified:
                self.notes.append(f"unverified: no manifest ({where}); replayed as allowed")
            else:
                self.integrity.append(f"unverified: no manifest ({where}); pass "
                                      "--allow-unverified to replay it anyway")
            return None, self.files
        check = ExportCheck(self.manifest, self.path)
        files = tuple(check.start(self.verify_key))
        self.integrity = check.problems  # shared: later findings appear as they are made
        return check, files

    def __iter__(self) -> Iterator[tuple[Position, Envelope]]:
        current = fingerprint(envelope_schema())
        keep = _Filter.of(self._window)
        check, files = self._check()
        for path in files:
            index = self.files.index(path)
            mismatch = check.digest(path) if check is not None else None
            try:
                handle: BinaryIO = path.open("rb")
            except OSError as exc:
                raise LogSourceError(f"{path}: cannot open: {exc.strerror}") from None
            with handle:
                try:
                    yield from self._read(path, handle, index, current, keep, check=check)
                except CorruptInputError as exc:
                    if mismatch is None:
                        raise
                    # The undecodable bytes are not what was exported: say so first.
                    raise CorruptInputError(f"{mismatch}; {exc}") from None
        if check is not None:
            check.finish(read_all=True)

    def _read(self, path: Path, handle: BinaryIO, index: int, current: str,
              keep: _Filter, *, check: ExportCheck | None) -> Iterator[tuple[Position, Envelope]]:
        try:
            reader = fastavro.reader(handle, return_record_name=True)
        except Exception as exc:
            raise CorruptInputError(f"{path}: not an Avro container file: {exc}") from None
        meta = reader.metadata
        self._check_owner(path, meta)
        if check is not None:
            check.open_file(path, meta)
        partition = int(meta.get(META_PARTITION, index))
        if fingerprint(reader.writer_schema) != current:
            # An export written with an older ABI: resolve to the current Envelope.
            handle.seek(0)
            reader = fastavro.reader(handle, reader_schema=envelope_schema(), return_record_name=True)
        name = path.name
        filtering = keep.active
        record_index = -1
        try:
            for record_index, record in enumerate(reader):
                env = envelope_from_record(record)  # type: ignore[arg-type]
                if check is not None:
                    check.record(f"{name}#{record_index}", env)
                if filtering and not keep.keep(env):
                    continue
                yield Position(source=name, partition=partition, offset=record_index, in_file=True), env
        except LogSourceError:
            raise
        except Exception as exc:
            raise CorruptInputError(
                f"{path}: record {record_index + 1}: cannot decode: {type(exc).__name__}: {exc}"
            ) from None
        if check is not None:
            check.close_file(path, record_index + 1)

    def _check_owner(self, path: Path, meta: dict[str, str]) -> None:
        for key, want in ((META_PREFIX, self.prefix), (META_TENANT, self.tenant)):
            have = meta.get(key)
            if want is not None and have and have != want:
                raise ForeignLogError(f"{path}: {key} is {have!r}, expected {want!r}")


class KafkaLogSource:
    """``<prefix>.log`` read_committed from the start, up to the end offsets taken at start."""

    def __init__(self, bootstrap: str, prefix: str, *, session: str | None = None,
                 tenant: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, idle_timeout_s: float = 10.0,
                 codec: EventCodec | None = None, topic: str | None = None,
                 start_offsets: Mapping[int, int] | None = None) -> None:
        """``topic`` overrides ``<prefix>.log`` (the DLQ holds envelopes too);
        ``start_offsets`` (partition -> first offset to read) resumes an incremental load."""
        from streams.topics import TopicLayout, TopicRole

        self.bootstrap, self.prefix = bootstrap, prefix
        self.topic = topic or TopicLayout(prefix=prefix).topic(TopicRole.LOG)
        self._start_offsets = dict(start_offsets or {})
        self.name = self.topic
        self.idle_timeout_s = idle_timeout_s
        self._codec = codec
        self._window = (session, tenant, since, until)
        self.windowed = since is not None or until is not None
        # Filled when reading starts; an export's manifest records them.
        self.cluster_id: str | None = None
        self.watermarks: dict[int, tuple[int, int]] = {}

    def __iter__(self) -> Iterator[tuple[Position, Envelope]]:
        from confluent_kafka import Consumer, KafkaError, TopicPartition

        from streams.topics import OUTPUT_MAX_RECORD_BYTES, OUTPUT_READER_CONFIG

        codec = self._codec or EventCodec(max_frame_bytes=OUTPUT_MAX_RECORD_BYTES)
        keep = _Filter.of(self._window)
        consumer = Consumer(_reader_settings(self.bootstrap, OUTPUT_READER_CONFIG))
        try:
            starts, ends = self._ranges(consumer)
            if not ends:
                return
            consumer.assign([TopicPartition(self.topic, p, starts[p]) for p in ends])
            pending = set(ends)
            idle_since = time.monotonic()
            while pending:
                batch = consumer.consume(num_messages=2000, timeout=0.5)
                for msg in batch:
                    p = msg.partition() or 0
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise LogSourceError(f"{self.topic}[{p}]: {err.str()}")
                        if (msg.offset() or 0) >= ends.get(p, 0):
                            pending.discard(p)
                        continue
                    offset = msg.offset() or 0
                    if p not in pending or offset >= ends[p]:
                        continue
                    idle_since = time.monotonic()
                    try:
                        env = codec.decode(msg.value() or b"")
                    except CodecError as exc:
                        raise CorruptInputError(f"{self.topic}[{p}]@{offset}: {exc}") from None
                    if offset + 1 >= ends[p]:
                        pending.discard(p)
                    if keep.active and not keep.keep(env):
                        continue
                    yield Position(source=self.topic, partition=p, offset=offset), env
                if pending and not batch and time.monotonic() - idle_since > self.idle_timeout_s:
                    self._truncated(consumer, pending, ends)
                    pending.clear()  # only transaction markers were left: the log is complete
        finally:
            consumer.close()

    def _ranges(self, consumer: Any) -> tuple[dict[int, int], dict[int, int]]:
        """First and end offset of every partition that has records to read (end offsets are
        taken now: the log is read up to here)."""
        from confluent_kafka import TopicPartition

        meta = consumer.list_topics(self.topic, timeout=10)
        topic_meta = meta.topics.get(self.topic)
        if topic_meta is None or topic_meta.error is not None or not topic_meta.partitions:
            raise LogSourceError(f"topic {self.topic} does not exist on {self.bootstrap}")
        self.cluster_id = meta.cluster_id or None
        ends: dict[int, int] = {}
        starts: dict[int, int] = {}
        for p in sorted(topic_meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
            self.watermarks[p] = (low, high)
            low = max(low, self._start_offsets.get(p, low))
            if high > low:
                starts[p], ends[p] = low, high
        return starts, ends

    def _truncated(self, consumer: Any, pending: set[int], ends: dict[int, int]) -> None:
        from confluent_kafka import TopicPartition

        positions = consumer.position([TopicPartition(self.topic, p) for p in sorted(pending)])
        # Trailing transaction markers occupy offsets but are never delivered.
        short = [(tp.partition, tp.offset) for tp in positions if tp.offset < ends[tp.partition]]
        if not short:
            return
        p, at = short[0]
        raise TruncatedLogError(
            f"{self.topic}[{p}]: stopped at offset {at}, end offset at start was {ends[p]} "
            f"(open transaction or lost records; no record for {self.idle_timeout_s:.0f}s)"
        )


def _reader_settings(bootstrap: str, limits: Mapping[str, Any]) -> dict[str, Any]:
    """A read_committed reader of a whole topic from the start, in no consumer group's way."""
    return {
        **kafka_settings(bootstrap),
        **limits,
        "group.id": f"rspp-replay-{uuid.uuid4().hex[:12]}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
    }
