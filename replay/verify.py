"""Is an export complete and is it the one that was written? Manifest checks and signatures.

An export's ``manifest.json`` records the prefix, the Kafka cluster id, every
partition's exported offsets (as contiguous runs), the turns per (tenant,
session) and each file's sha256. :class:`ExportCheck` holds a directory to
that record while replay streams it: a missing partition file, records the
offsets do not account for (an offset gap) or more records than offsets,
a record or turn present twice, a file from another prefix or cluster, a
digest mismatch. Each finding is one line, starting with its class.

The manifest is signed with Ed25519 over its canonical JSON (sorted keys, no
``signature`` field), so a recomputed manifest no longer passes ``--verify-key``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines.canonical import canonical_json, sha256_digest
from replay.errors import ReplayError
from streams.abi.events import Envelope, EventType

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "MAX_PROBLEMS",
    "PRIVATE_KEY",
    "PUBLIC_KEY",
    "ExportCheck",
    "generate_keys",
    "load_signing_key",
    "sign_manifest",
    "verify_signature",
]

PRIVATE_KEY = "rspp-export.key"
PUBLIC_KEY = "rspp-export.pub"
MAX_PROBLEMS = 50  # a wholly foreign export would otherwise list every record
_META_PREFIX, _META_PARTITION, _META_CLUSTER = "rspp.prefix", "rspp.partition", "rspp.cluster"


# -- signatures -------------------------------------------------------------------------------
def _signed_bytes(manifest: dict[str, Any]) -> bytes:
    return canonical_json({k: v for k, v in manifest.items() if k != "signature"})


def _read_pem(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ReplayError(f"{path}: cannot read {what}: {exc.strerror}") from None


def load_signing_key(key: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in the PEM file ``key`` (checked before an export starts)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = _read_pem(key, "the signing key")
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ReplayError(f"{key}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ReplayError(f"{key}: not an Ed25519 private key (see `rspp keys generate`)")
    return private


def sign_manifest(manifest: dict[str, Any], key: Path | Ed25519PrivateKey) -> dict[str, Any]:
    """The manifest with a ``signature`` block (Ed25519 over its canonical JSON)."""
    from cryptography.hazmat.primitives import serialization

    private = load_signing_key(key) if isinstance(key, Path) else key
    public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
    signature = private.sign(_signed_bytes(manifest))
    return {**manifest, "signature": {
        "algorithm": "ed25519", "public_key_sha256": sha256_digest(public),
        "value": base64.b64encode(signature).decode()}}


def verify_signature(manifest: dict[str, Any], key: Path) -> str | None:
    """None when ``key`` (an Ed25519 public key PEM) signed this manifest, else the problem."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = _read_pem(key, "the verify key")
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise ReplayError(f"{key}: not a PEM public key ({exc})") from None
    if not isinstance(public, Ed25519PublicKey):
        raise ReplayError(f"{key}: not an Ed25519 public key (see `rspp keys generate`)")
    block = manifest.get("signature")
    if not isinstance(block, dict) or not block.get("value"):
        return f"signature: the manifest is not signed, but --verify-key {key.name} was given"
    if block.get("algorithm") != "ed25519":
        return f"signature: algorithm {block.get('algorithm')!r}, expected 'ed25519'"
    try:
        raw = base64.b64decode(str(block["value"]), validate=True)
        public.verify(raw, _signed_bytes(manifest))
    except (ValueError, InvalidSignature):
        return (f"signature: the manifest does not verify with {key.name} "
                "(changed after signing, or signed with another key)")
    return None


def generate_keys(out: Path) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair as PEM under ``out``: private key 0600, public key 0644."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path, public_path = out / PRIVATE_KEY, out / PUBLIC_KEY
    for path in (private_path, public_path):
        if path.exists():
            raise ReplayError(f"{path}: already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Created 0600 from the start: the private key is never readable by others, even briefly.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private)
        public_path.write_bytes(public)
    except OSError as exc:
        raise ReplayError(f"{out}: cannot write keys: {exc.strerror}") from None
    return private_path, public_path


# -- completeness -----------------------------------------------------------------------------
@dataclass(slots=True)
class _FileEntry:
    path: str
    partition: int
    records: int
    sha256: str


@dataclass(slots=True)
class ExportCheck:
    """Holds one export directory to its manifest while replay reads it."""

    manifest: dict[str, Any]
    root: Path
    problems: list[str] = field(default_factory=list)
    _files: dict[str, _FileEntry] = field(default_factory=dict)
    _offsets: dict[int, int] = field(default_factory=dict)  # partition -> offsets accounted for
    _events: dict[str, str] = field(default_factory=dict)  # event_id -> where first seen
    _opened: dict[tuple[str, str, str], str] = field(default_factory=dict)
    _turns: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _dropped: int = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        else:
            self._dropped += 1

    @property
    def prefix(self) -> str | None:
        export = self.manifest.get("export")
        return str(export.get("prefix")) if isinstance(export, dict) else None

    @property
    def cluster_id(self) -> str | None:
        export = self.manifest.get("export")
        value = export.get("cluster_id") if isinstance(export, dict) else None
        return str(value) if value else None

    def start(self, verify_key: Path | None) -> list[Path]:
        """Checks that need no records; returns the files to read, in manifest order."""
        if verify_key is not None:
            bad = verify_signature(self.manifest, verify_key)
            if bad is not None:
                self.problem(bad)
        try:
            for f in self.manifest["files"]:
                entry = _FileEntry(str(f["path"]), int(f["partition"]), int(f["records"]),
                                   str(f.get("sha256", "")))
                self._files[entry.path] = entry
            partitions = self.manifest.get("partitions")
            if not isinstance(partitions, list):
                self.problem("manifest: no 'partitions' record (written before completeness "
                             "was recorded); re-export to verify offsets")
                partitions = []
            for p in partitions:
                self._partition(p)
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"{self.root / 'manifest.json'}: malformed manifest: "
                              f"{type(exc).__name__}: {exc}") from None
        readable = []
        for entry in self._files.values():
            path = self.root / entry.path
            if Path(entry.path).name != entry.path:
                self.problem(f"manifest: file {entry.path!r} is not inside the export")
            elif not path.is_file():
                self.problem(f"missing partition file: {entry.path} (partition {entry.partition}, "
                             f"{entry.records} records) is listed in the manifest but not present")
            else:
                readable.append(path)
        for stray in sorted(self.root.glob("*.avro")):
            if stray.name not in self._files:
                self.problem(f"foreign partition file: {stray.name} is not accounted for by "
                             "the manifest")
        return readable

    def _partition(self, p: dict[str, Any]) -> None:
        partition, records, name = int(p["partition"]), int(p["records"]), p.get("file")
        runs = [(int(a), int(b)) for a, b in p.get("offsets", [])]
        counted = 0
        for i, (a, b) in enumerate(runs):
            if b < a or (i and a <= runs[i - 1][1]):
                self.problem(f"duplicated records: partition {partition}: offset run {a}-{b} "
                             "overlaps or goes back")
            counted += b - a + 1
        self._offsets[partition] = counted
        if counted != records:
            self.problem(f"offset gap: partition {partition}: the manifest's offsets account for "
                         f"{counted} records, its count says {records}")
        if records and (name is None or str(name) not in self._files):
            self.problem(f"missing partition file: partition {partition} has {records} records "
                         "but no file in the manifest's file list")

    def digest(self, path: Path) -> str | None:
        """The digest problem of ``path`` (also recorded), None when it matches."""
        entry = self._files.get(path.name)
        if entry is None or not entry.sha256:
            return None
        h = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 20):
                    h.update(chunk)
        except OSError as exc:
            raise ReplayError(f"{path}: cannot read: {exc.strerror}") from None
        have = "sha256:" + h.hexdigest()
        if have == entry.sha256:
            return None
        found = (f"digest mismatch: {path.name}: sha256 {have} does not match the manifest's "
                 f"{entry.sha256}")
        self.problem(found)
        return found

    def open_file(self, path: Path, meta: dict[str, str]) -> None:
        entry = self._files.get(path.name)
        for key, want, label in ((_META_PREFIX, self.prefix, "prefix"),
                                 (_META_CLUSTER, self.cluster_id, "cluster"),
                                 (_META_PARTITION, None if entry is None else str(entry.partition),
                                  "partition")):
            have = meta.get(key) or None
            if want is not None and have != want:
                self.problem(f"foreign partition file: {path.name}: {key} is {have!r}, the "
                             f"manifest's {label} is {want!r}")

    def record(self, where: str, env: Envelope) -> None:
        first = self._events.get(env.event_id)
        if first is not None:
            self.problem(f"duplicated record: event {env.event_id} ({env.event_type.value}) at "
                         f"{where} was already read at {first}")
        else:
            self._events[env.event_id] = where
        if env.turn_id is None:
            return
        key = (env.tenant_id, env.session_id, env.turn_id)
        self._turns[key] = self._turns.get(key, 0) + 1
        if env.event_type is EventType.TURN_OPEN:
            opened = self._opened.get(key)
            if opened is not None:
                self.problem(f"duplicated turn: {'/'.join(key)} opened again at {where} "
                             f"(first at {opened})")
            else:
                self._opened[key] = where

    def close_file(self, path: Path, records: int) -> None:
        entry = self._files.get(path.name)
        if entry is None:
            return
        want = self._offsets.get(entry.partition, entry.records)
        if records < want:
            self.problem(f"offset gap: partition {entry.partition}: {path.name} holds {records} "
                         f"records, the manifest's offsets account for {want}")
        elif records > want:
            self.problem(f"duplicated records: partition {entry.partition}: {path.name} holds "
                         f"{records} records, the manifest's offsets account for {want}")

    def finish(self, *, read_all: bool) -> list[str]:
        """Turns per (tenant, session) against the manifest; returns every problem."""
        if read_all:
            self._compare_turns()
        if self._dropped:
            self.problems.append(f"(+{self._dropped} more problems)")
        return self.problems

    def _compare_turns(self) -> None:
        want: dict[tuple[str, str, str], int] = {}
        for s in self.manifest.get("sessions", []):
            for t in s.get("turns", []):
                want[(str(s.get("tenant_id")), str(s.get("session_id")), str(t.get("turn_id")))] = \
                    int(t.get("events", 0))
        for key, n in want.items():
            have = self._turns.get(key)
            if have is None:
                self.problem(f"missing turn: {'/'.join(key)} is in the manifest but not in the export")
            elif have != n:
                kind = "duplicated records" if have > n else "missing records"
                self.problem(f"{kind}: turn {'/'.join(key)} has {have} events, the manifest "
                             f"says {n}")
        for key in self._turns.keys() - want.keys():
            self.problem(f"foreign turn: {'/'.join(key)} is not accounted for by the manifest")
