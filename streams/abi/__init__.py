"""The Event ABI: Avro schemas (``avro/``), typed events, the wire codec and routing headers.

The runtime needs only this surface::

    codec = EventCodec()                       # file registry, or RSPP_SCHEMA_REGISTRY_URL
    value, headers = codec.encode_with_headers(Envelope.new(payload, ...))
    event = codec.decode(value)                # CodecError on any bad input -> DLQ
    route = parse_routing_headers(msg.headers())  # lane + session without decoding
"""

from __future__ import annotations

from streams.abi.codec import EventCodec
from streams.abi.errors import (
    AbiError,
    CodecError,
    CompatError,
    FramingError,
    HeaderError,
    OversizedError,
    RegistryError,
    SchemaError,
    UnknownSchemaError,
)
from streams.abi.events import Correlation, Envelope, EventType, Lane, Payload
from streams.abi.headers import RoutingHeaders, lane_of, parse_routing_headers
from streams.abi.version import ABI_VERSION

__all__ = [
    "ABI_VERSION",
    "AbiError",
    "CodecError",
    "CompatError",
    "Correlation",
    "Envelope",
    "EventCodec",
    "EventType",
    "FramingError",
    "HeaderError",
    "Lane",
    "OversizedError",
    "Payload",
    "RegistryError",
    "RoutingHeaders",
    "SchemaError",
    "UnknownSchemaError",
    "lane_of",
    "parse_routing_headers",
]
