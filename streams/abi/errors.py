"""Errors of the Event ABI. Every one derives from :class:`AbiError` (a ``StreamsError``).

Decode failures are all :class:`CodecError`, so a consumer needs one ``except`` to
route bad input to the DLQ; ``reason`` is a short machine tag for the DeadLetter
record and metrics, the message is the human explanation.
"""

from __future__ import annotations

from streams.errors import StreamsError

__all__ = [
    "AbiError",
    "CodecError",
    "CompatError",
    "CompatSourceError",
    "FramingError",
    "HeaderError",
    "OversizedError",
    "RegistryError",
    "SchemaError",
    "UnknownSchemaError",
]


class AbiError(StreamsError):
    """Root of every Event ABI error."""


class SchemaError(AbiError):
    """An ``.avsc`` file (or a composed schema) is invalid; names the file and the reason."""


class RegistryError(AbiError):
    """The schema registry (file or Confluent) could not be read, written or reached."""


class CodecError(AbiError):
    """A frame could not be encoded or decoded. ``reason`` is a short tag for the DLQ."""

    reason: str = "bad_body"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class FramingError(CodecError):
    """The Confluent wire framing is broken (truncated frame, wrong magic byte)."""

    reason = "bad_framing"


class UnknownSchemaError(CodecError):
    """The frame names a schema id that no registry knows."""

    reason = "unknown_schema"

    def __init__(self, schema_id: int) -> None:
        super().__init__(f"unknown schema id {schema_id}: not in the registry")
        self.schema_id = schema_id


class OversizedError(CodecError):
    """A frame exceeds the configured size limit."""

    reason = "oversized"


class HeaderError(AbiError):
    """Routing headers are missing or garbled; the record cannot be routed without decode."""

    reason: str = "bad_headers"


class CompatError(AbiError):
    """A schema change breaks a compatibility rule (exit code 1)."""

    exit_code = 1


class CompatSourceError(AbiError):
    """Previous schema versions could not be read (bad directory, git ref or subject)."""

    exit_code = 2
