"""ExtensionRegistry: digest pinning, refusal of modified files, entry-point discovery."""

from __future__ import annotations

import asyncio
import shutil
import sys
import zipfile
from collections.abc import Iterator
from importlib.metadata import distribution
from pathlib import Path

import pytest

from pipelines.bundles import read_bundle
from streams.cli import main as rspp_main
from streams.extensions import (
    DigestMismatchError,
    ExtensionRefusedError,
    ExtensionRegistry,
    IsolatedNode,
    distribution_digest,
    load_manifests,
    module_digest,
    wheel_digest,
)
from streams.nodes import NodeContext, NodeError, NodeRegistry, ProviderPolicy, TranscriptText
from tests.extensions.conftest import bad_manifest

ROOT = Path(__file__).resolve().parents[2]
BUNDLE_V1_1 = ROOT / "pipelines" / "bundles" / "voice_assistant_bundle_v1_1.json"
CTX = NodeContext(session_id="s", turn_id="t", node_id="n", correlation_id="c")


@pytest.fixture
def tampered_package(tmp_path: Path) -> Iterator[str]:
    """A copy of the echo node as its own importable package, pinned, then modified."""
    pkg = tmp_path / "tampered_ext"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(ROOT / "tests/extensions/bad_nodes/echo.py", pkg / "echo.py")
    sys.path.insert(0, str(tmp_path))
    try:
        yield "tampered_ext"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("tampered_ext")]:
            del sys.modules[name]


def test_installed_example_matches_its_manifest_pin() -> None:
    statuses = ExtensionRegistry(load_manifests()).statuses()
    (sentiment,) = [s for s in statuses if s.node_type == "ext.sentiment"]
    assert sentiment.state == "verified", sentiment.reason
    assert sentiment.target == "rspp_sentiment.node:build" and sentiment.external
    # Bundles reference the extension by that digest.
    pins = {p.node_type: p.digest for p in read_bundle(BUNDLE_V1_1).node_digests}
    assert pins["ext.sentiment"] == sentiment.pinned == sentiment.actual


def test_a_wheel_hashes_like_its_installation(tmp_path: Path) -> None:
    dist = distribution("rspp-sentiment-node")
    wheel = tmp_path / "rspp_sentiment_node-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for f in dist.files or ():
            if f.suffix != ".pyc" and f.name not in ("INSTALLER", "REQUESTED", "direct_url.json"):
                zf.writestr(f.as_posix(), Path(str(f.locate())).read_bytes())
    assert wheel_digest(wheel) == distribution_digest(dist)


def test_modified_files_are_refused(tampered_package: str, tmp_path: Path) -> None:
    manifest = bad_manifest("echo", package=tampered_package)
    (tmp_path / tampered_package / "echo.py").write_text("build = None  # swapped after pinning\n")
    assert module_digest(f"{tampered_package}.echo") != manifest.package.digest  # type: ignore[union-attr]
    registry = ExtensionRegistry([("tampered.yaml", manifest)])
    (status,) = registry.statuses()
    assert status.state == "refused"
    assert status.reason is not None and "\n" not in status.reason
    assert "but the manifest pins" in status.reason and "refusing to load" in status.reason
    with pytest.raises(DigestMismatchError, match=r"tampered\.yaml.*refusing to load"):
        registry.install(NodeRegistry(), strict=True)
    # Not strict: the node type exists, never loads, and fails every call as a node error.
    nodes = NodeRegistry()
    registry.install(nodes)
    node = nodes.create("ext.bad_echo", node_id="n", config={}, policy=ProviderPolicy())()

    async def call() -> None:
        async for _ in node.process(TranscriptText("hi", True), CTX):
            pass

    with pytest.raises(ExtensionRefusedError, match="refusing to load") as caught:
        asyncio.run(call())
    assert isinstance(caught.value, NodeError)


def test_a_bundle_pinning_another_digest_is_refused() -> None:
    bundle = read_bundle(BUNDLE_V1_1)
    other = bad_manifest("echo", node_type="ext.sentiment")  # right type, wrong digest
    statuses = ExtensionRegistry([("other.yaml", other)]).install(NodeRegistry(), bundle=bundle)
    (status,) = [s for s in statuses if s.node_type == "ext.sentiment"]
    assert status.state == "refused" and "pins ext.sentiment at" in (status.reason or "")


def test_entry_point_node_runs_isolated_through_the_node_registry() -> None:
    ext = ExtensionRegistry(load_manifests(), pool_size=1)
    try:
        registry = ext.node_registry(bundle=read_bundle(BUNDLE_V1_1), strict=True)
        factory = registry.create("ext.sentiment", node_id="sentiment",
                                  config={"labels": ["positive", "neutral", "negative"]})
        node = factory()
        assert isinstance(node, IsolatedNode)

        async def call() -> list[object]:
            return [x async for x in node.process(TranscriptText("I love it", True), CTX)]

        assert asyncio.run(call()) == [TranscriptText("I love it", True)]
        node.close()
    finally:
        ext.close()


def test_sentiment_lexicon() -> None:
    from rspp_sentiment import sentiment_label  # type: ignore[import-untyped]

    assert sentiment_label("I love this, thanks") == "positive"
    assert sentiment_label("this is terrible") == "negative"
    assert sentiment_label("this is not good") == "negative"
    assert sentiment_label("what time is it") == "neutral"


def test_cli_verify_and_run_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        rspp_main(["ext", "verify"])
    assert done.value.code == 0
    assert "ok ext.sentiment" in capsys.readouterr().out
    items = tmp_path / "in.txt"
    items.write_text("hello\n")
    with pytest.raises(SystemExit) as done:
        rspp_main(["ext", "run-node", "ext.sentiment", "--input", str(items)])
    assert done.value.code == 0
    assert '"text": "hello"' in capsys.readouterr().out
