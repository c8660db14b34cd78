"""Round trip with the real runtime: run → export → replay is clean; a changed node is caught."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from replay import ContainerLogSource, KafkaLogSource, export_log, replay
from replay.model import DivergenceKind
from streams.nodes import Item, NodeContext, TranscriptText, default_registry
from streams.nodes.text import NormalizeNode

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class _ShoutingNormalize(NormalizeNode):
    """A 'new release' of text.normalize that stopped lowercasing."""

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        async for out in super().process(item, ctx):
            assert isinstance(out, TranscriptText)
            yield TranscriptText(out.text.upper(), out.final, out.confidence)


def test_recorded_runtime_log_replays_clean_and_catches_a_changed_node(
    kafka_bootstrap: str, demo_recording: Any, tmp_path: Path
) -> None:
    result = demo_recording
    assert result.turns_committed > 0 and result.turns_aborted > 0

    live = replay(KafkaLogSource(kafka_bootstrap, result.prefix))
    assert live.ok, [str(d) for d in live.divergences]
    export = tmp_path / "export"
    manifest = export_log(
        KafkaLogSource(kafka_bootstrap, result.prefix), export, prefix=result.prefix, codec="zstd"
    )
    assert (
        sum(len(s["turns"]) for s in manifest["sessions"])
        == result.turns_committed + result.turns_aborted
    )
    exported = replay(ContainerLogSource(export), resimulate=True)
    assert exported.ok, [*exported.integrity, *(str(d) for d in exported.divergences)]
    assert exported.events == live.events

    from streams.nodes.kind import parse_config
    from streams.nodes.text import NormalizeConfig

    registry = default_registry()
    registry.register(
        "text.normalize",
        lambda node_id, mapping, policy: (
            lambda: _ShoutingNormalize(
                parse_config(NormalizeConfig, mapping, node_id=node_id)
            )
        ),
        deterministic=True,
        replace=True,
    )
    changed = replay(ContainerLogSource(export), resimulate=True, registry=registry)
    assert not changed.ok
    assert {(d.kind, d.node_id) for d in changed.divergences} == {
        (DivergenceKind.OUTPUT, "normalize.clean")
    }
