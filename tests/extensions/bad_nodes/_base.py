"""The shared shape: pass transcripts through, misbehave on the trigger word."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping

from streams.nodes.items import Item, TranscriptText
from streams.nodes.node import Node, NodeContext


class PassThrough:
    trigger = "\0never"  # a transcript containing this word makes the node misbehave
    misbehave: Callable[[], None] = staticmethod(lambda: None)

    async def process(self, item: Item, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        del ctx
        if isinstance(item, TranscriptText) and self.trigger in item.text.split():
            type(self).misbehave()
        yield item

    async def flush(self, ctx: NodeContext) -> AsyncGenerator[Item, None]:
        del ctx
        return
        yield

    def close(self) -> None:
        pass


def builder(cls: type[PassThrough]) -> Callable[[Mapping[str, object]], Callable[[], Node]]:
    def build(config: Mapping[str, object]) -> Callable[[], Node]:
        del config
        return cls

    return build
