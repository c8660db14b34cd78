"""A real Faust app reading RSPP events (run as a subprocess by test_faust_interop).

Usage: python -m tests.abi.faust_app BOOTSTRAP TOPIC GROUP COUNT OUT_FILE
Writes one JSON line per received event to OUT_FILE and exits after COUNT.
"""

from __future__ import annotations

import os
import sys

import faust
import orjson

from streams.abi.events import Envelope
from streams.abi.faust_codec import register_faust_codec


def main() -> None:
    bootstrap, topic_name, group, count, out_file = sys.argv[1:6]
    register_faust_codec()
    app = faust.App(
        group,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        topic_partitions=1,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
    )
    topic = app.topic(topic_name, value_serializer="rspp")
    received: list[bytes] = []

    @app.agent(topic)
    async def collect(stream):  # type: ignore[no-untyped-def]
        async for event in stream:
            assert isinstance(event, Envelope)
            received.append(
                orjson.dumps(
                    {
                        "event_id": event.event_id,
                        "payload": type(event.payload).__name__,
                        "text": getattr(event.payload, "text", None),
                        "lane": event.lane.value,
                    }
                )
            )
            if len(received) >= int(count):
                with open(out_file, "wb") as fh:
                    fh.write(b"\n".join(received) + b"\n")
                # Faust's graceful stop waits on this very agent task; the result is on disk.
                os._exit(0)

    sys.argv = [sys.argv[0]]
    faust.Worker(app, loglevel="error").execute_from_commandline()


if __name__ == "__main__":
    main()
