"""Codec: Confluent framing, bit-exact round trips, schema resolution, typed errors."""

from __future__ import annotations

import copy
import struct

import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.abi import events as ev
from streams.abi.codec import EventCodec
from streams.abi.errors import CodecError, FramingError, OversizedError, UnknownSchemaError
from streams.abi.registry import ConfluentRegistry, FileRegistry
from streams.abi.schemas import ENVELOPE, SchemaSet, load_schema_dir
from tests.abi.samples import PAYLOADS, envelope


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec(registry=FileRegistry())


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: type(p).__name__)
def test_every_payload_round_trips_bit_exact(codec: EventCodec, payload: ev.Payload) -> None:
    event = envelope(payload)
    frame = codec.encode(event)
    decoded = codec.decode(frame)
    assert decoded == event
    assert type(decoded.payload) is type(payload)
    assert codec.encode(decoded) == frame


def test_frame_is_magic_byte_then_big_endian_schema_id(codec: EventCodec) -> None:
    frame = codec.encode(envelope(PAYLOADS[0]))
    assert frame[0] == 0
    assert struct.unpack(">I", frame[1:5])[0] == codec.schema_id


def test_decoded_enums_are_typed(codec: EventCodec) -> None:
    decoded = codec.decode(codec.encode(envelope(ev.Cancel(scope=ev.CancelScope.SESSION, target="s"))))
    assert decoded.lane is ev.Lane.CONTROL
    assert decoded.event_type is ev.EventType.CANCEL
    assert isinstance(decoded.payload, ev.Cancel)
    assert decoded.payload.scope is ev.CancelScope.SESSION


def test_envelope_invariants() -> None:
    good = envelope(ev.Admit())
    with pytest.raises(ValueError, match="does not match payload"):
        ev.Envelope(**{**_fields(good), "event_type": ev.EventType.REJECT})
    with pytest.raises(ValueError, match="timezone-aware"):
        ev.Envelope(**{**_fields(good), "ts": good.ts.replace(tzinfo=None)})
    assert ev.Envelope.new(ev.AudioChunk(codec="opus", sample_rate=1, channels=1, seq=0, audio=b""),
                           tenant_id="t", session_id="s", seq=0).lane is ev.Lane.DATA


def _fields(e: ev.Envelope) -> dict[str, object]:
    return {name: getattr(e, name) for name in e.__dataclass_fields__}


@pytest.mark.parametrize(
    ("frame", "error", "match"),
    [
        (b"", FramingError, "truncated frame"),
        (b"\x00\x00\x01", FramingError, "truncated frame"),
        (b"\x01\x00\x00\x00\x01abc", FramingError, "wrong magic byte 0x01"),
        (b"\x00\x7f\xff\xff\xfe\x00", UnknownSchemaError, "unknown schema id 2147483646"),
    ],
)
def test_bad_frames_raise_typed_errors(codec: EventCodec, frame: bytes, error: type[CodecError], match: str) -> None:
    with pytest.raises(error, match=match) as info:
        codec.decode(frame)
    assert info.value.reason in ("bad_framing", "unknown_schema")


def test_body_that_does_not_match_the_schema(codec: EventCodec) -> None:
    frame = codec.encode(envelope(PAYLOADS[2]))
    with pytest.raises(CodecError, match="body does not match") as info:
        codec.decode(frame[: len(frame) // 2])
    assert info.value.reason == "bad_body"
    with pytest.raises(CodecError, match="trailing bytes"):
        codec.decode(frame + b"\x00")


def test_oversized_frames_are_rejected_both_ways() -> None:
    small = EventCodec(registry=FileRegistry(), max_frame_bytes=200)
    big = envelope(ev.AudioChunk(codec="pcm", sample_rate=8000, channels=1, seq=0, audio=b"x" * 500))
    with pytest.raises(OversizedError, match="exceeds limit 200"):
        small.encode(big)
    with pytest.raises(OversizedError):
        small.decode(b"\x00" * 201)
    # A copy with a larger limit (the processor's writer) encodes it; the original still refuses.
    wider = small.with_limit(2000)
    assert wider.decode(wider.encode(big)) == big and wider.schema_id == small.schema_id
    with pytest.raises(OversizedError):
        small.encode(big)


def test_unencodable_event_is_a_codec_error(codec: EventCodec) -> None:
    with pytest.raises(CodecError) as info:
        codec.encode(envelope(ev.TurnCommit(outputs="two")))  # type: ignore[arg-type]
    assert info.value.reason == "invalid_event"
    # fastavro's writer does not range-check ints; the validating codec does.
    checked = EventCodec(registry=FileRegistry(), validate=True)
    with pytest.raises(CodecError, match="outputs"):
        checked.encode(envelope(ev.TurnCommit(outputs=2**40)))


def test_frames_of_an_older_registered_version_are_resolved(tmp_path: object) -> None:
    """A v0 writer without NodeOutput.content_type still decodes with the current reader."""
    current = load_schema_dir()
    older_defs = copy.deepcopy(dict(current.definitions))
    node_output = older_defs["rspp.events.NodeOutput"]
    node_output["fields"] = [f for f in node_output["fields"] if f["name"] != "content_type"]
    older = SchemaSet(source="v0", definitions=older_defs, origins=current.origins)
    registry = FileRegistry(tmp_path / "registry.json")  # type: ignore[operator]
    old_codec = EventCodec(registry=registry, schemas=older)
    new_codec = EventCodec(registry=registry)
    assert old_codec.schema_id != new_codec.schema_id
    payload = ev.NodeOutput(output_seq=1, kind="text", text="hi", final=False)
    decoded = new_codec.decode(old_codec.encode(envelope(payload)))
    assert decoded.payload == payload


def test_confluent_deserializer_reads_rspp_frames() -> None:
    """Framing interop: confluent-kafka's own AvroDeserializer decodes what RSPP wrote."""
    registry = ConfluentRegistry("mock://rspp-codec-test")
    codec = EventCodec(registry=registry)
    event = envelope(PAYLOADS[13])
    frame = codec.encode(event)
    record = AvroDeserializer(registry._client)(frame, SerializationContext("p.control", MessageField.VALUE))
    assert record["event_id"] == event.event_id
    assert record["payload"] == {"scope": "TURN", "target": "turn-1", "reason": "barge_in"}
    assert record["ts"] == event.ts
    versions = registry.versions(ENVELOPE)
    assert [v.schema_id for v in versions] == [codec.schema_id]
    assert registry.schema_by_id(codec.schema_id + 1000) is None
    assert EventCodec(registry=ConfluentRegistry("mock://rspp-codec-test")).decode(frame) == event
