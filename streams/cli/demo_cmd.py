"""``rspp demo``: the main job, end to end on a real broker.

For now it proves the foundation: start (or reuse) the local broker, apply a
fresh prefix's topics, produce a few lane events with routing headers, and
read them back through Kafka.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from streams.cli.output import console, emit_json, err_console
from streams.cluster import resolve_bootstrap
from streams.topics import Lane, TopicLayout, apply_topics

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command(name="demo")(demo)


def demo(
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Topic prefix (default: a fresh demo-<id>).")
    ] = None,
    sessions: Annotated[int, typer.Option("--sessions", help="Simulated voice sessions.")] = 3,
    json_out: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Run the main job on a local (or RSPP_BOOTSTRAP) broker and show what went through Kafka."""
    from confluent_kafka import Consumer, Producer

    bootstrap = resolve_bootstrap(start_local=True)
    layout = TopicLayout(prefix=prefix or f"demo-{uuid.uuid4().hex[:8]}", partitions=3)
    apply_topics(bootstrap, layout)
    if not json_out:
        err_console.print(f"broker {bootstrap}; topics under prefix [bold]{layout.prefix}[/]")

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    sent = 0
    for n in range(sessions):
        session = f"sess-{n}"
        for lane, event_type, body in (
            (Lane.CONTROL, "SessionOpen", {"session_id": session}),
            (Lane.DATA, "Transcript", {"text": "turn on the kitchen lights", "final": True}),
            (Lane.TELEMETRY, "Telemetry", {"rtt_ms": 12 + n}),
            (Lane.CONTROL, "Cancel", {"scope": "turn"}),
        ):
            headers: list[tuple[str, str | bytes | None]] = [
                ("ce_specversion", b"1.0"),
                ("ce_id", uuid.uuid4().hex.encode()),
                ("ce_type", event_type.encode()),
                ("ce_source", b"rspp-demo"),
                ("rspp_lane", lane.value.encode()),
                ("rspp_session", session.encode()),
            ]
            producer.produce(
                layout.lane_topic(lane), key=session, value=orjson.dumps(body), headers=headers
            )
            sent += 1
    producer.flush(10)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{layout.prefix}.demo-reader",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([layout.lane_topic(lane) for lane in Lane])
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(received) < sent and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error() is not None:
            continue
        raw = msg.headers() or []
        pairs = raw.items() if isinstance(raw, dict) else raw
        got = {k: v.decode() if isinstance(v, bytes) else str(v or "") for k, v in pairs}
        received.append(
            {
                "topic": msg.topic(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "session": got.get("rspp_session"),
                "type": got.get("ce_type"),
                "value": orjson.loads(msg.value() or b"null"),
            }
        )
    consumer.close()
    received.sort(key=lambda r: (str(r["session"]), str(r["topic"]), int(str(r["offset"]))))
    if json_out:
        emit_json(
            {"bootstrap": bootstrap, "prefix": layout.prefix, "sent": sent, "events": received}
        )
    else:
        table = Table(title=f"{len(received)}/{sent} lane events read back through Kafka")
        for col in ("session", "topic", "p", "offset", "type", "value"):
            table.add_column(col)
        for r in received:
            table.add_row(
                str(r["session"]),
                str(r["topic"]),
                str(r["partition"]),
                str(r["offset"]),
                str(r["type"]),
                orjson.dumps(r["value"]).decode(),
            )
        console.print(table)
    if len(received) != sent:
        err_console.print(f"only {len(received)} of {sent} events came back")
        raise typer.Exit(1)
