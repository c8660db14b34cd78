"""Untrusted nodes run in bubblewrap: a hostile extension's escape attempts fail inside it.

The hostile package (``tests/extensions/hostile``) is admitted like any
untrusted extension (manifest, digest, registry); each call makes one attempt
and answers ``ok ...`` or ``denied <errno>``. After every call the host's
``/proc`` must show exactly the sandbox's two processes (bwrap's init and the
worker) under the bubblewrap process, and the same worker serves the next call.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from replay.logcheck import check_log
from streams.abi import events as ev
from streams.client import VoiceClient
from streams.extensions import (
    ExtensionRefusedError,
    ExtensionRegistry,
    IsolatedNode,
    Sandbox,
    SandboxUnavailableError,
    WorkerPool,
    WorkerSpec,
)
from streams.nodes import NodeContext, NodeRegistry, TranscriptText
from streams.runtime.processor import ProcessorConfig
from streams.testing import ProcessorThread, read_log
from streams.topics import TopicLayout, apply_topics
from tests.extensions.conftest import bad_manifest
from tests.extensions.hostile.node import NAMED, REPO
from tests.extensions.test_processor_kafka import _bundle, _closed_at_least, _wait_for

CTX = NodeContext(session_id="s1", turn_id="t1", node_id="hostile", correlation_id="c1")
NPROC = 8  # small on purpose: the fork bomb test must stay harmless even if it fails


def _manifest(trust_level: str = "untrusted", capabilities: tuple[str, ...] = ()) -> object:
    return bad_manifest("node", node_type="ext.hostile", package="tests.extensions.hostile",
                        trust_level=trust_level, capabilities=capabilities)


class Hostile:
    """One pool of the hostile extension, driven from one event loop (as a processor does)."""

    def __init__(self, *, trust_level: str = "untrusted", capabilities: tuple[str, ...] = (),
                 sandbox: Sandbox | None = None) -> None:
        manifest = _manifest(trust_level, capabilities)
        registry = ExtensionRegistry([("hostile.yaml", manifest)],  # type: ignore[list-item]
                                     sandbox=sandbox or Sandbox(nproc=NPROC))
        (status,) = registry.statuses()
        assert status.state == "verified", status.reason
        spec = registry.worker_spec(status)
        assert (spec.sandbox is not None) == (trust_level == "untrusted")
        self.pool = WorkerPool(spec, size=1)
        self.pool.prestart()
        self.loop = asyncio.new_event_loop()

    def ask(self, text: str) -> str:
        async def call() -> str:
            node = IsolatedNode(self.pool, timeout_s=5.0)
            try:
                out = [o async for o in node.process(TranscriptText(text=text, final=True), CTX)]
            finally:
                node.close()
            assert len(out) == 1 and isinstance(out[0], TranscriptText)
            return out[0].text

        return self.loop.run_until_complete(call())

    @property
    def pid(self) -> int | None:
        return self.pool.workers[0].pid

    def processes(self) -> list[int]:
        """Host pids under the worker's bubblewrap process."""
        assert self.pid is not None
        return _descendants(self.pid)

    def close(self) -> None:
        self.pool.close()
        self.loop.close()


@pytest.fixture
def sandboxed() -> Iterator[Hostile]:
    hostile = Hostile()
    try:
        yield hostile
    finally:
        hostile.close()


def _children() -> dict[int, list[int]]:
    """Every process on the host by parent pid (from /proc)."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue  # exited meanwhile
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _descendants(pid: int) -> list[int]:
    tree, out, todo = _children(), [], [pid]
    while todo:
        kids = tree.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def test_escape_attempts_fail_inside_the_sandbox(sandboxed: Hostile) -> None:
    marker = f"rspp-hostile-{uuid.uuid4().hex}"
    worker = sandboxed.pid
    outside = [REPO / marker, Path("/tmp") / marker]
    try:
        assert sandboxed.ask(f"write {REPO / marker}") in ("denied EACCES", "denied EROFS")
        # No /tmp inside (EACCES when the checkout itself lives under /tmp: then /tmp is
        # a read-only parent of the bound runtime).
        assert sandboxed.ask(f"write /tmp/{marker}") in ("denied ENOENT", "denied EACCES")
        assert sandboxed.ask("read /etc/passwd") == "denied ENOENT"  # no /etc inside
        connect = sandboxed.ask("connect 127.0.0.1:9092")
        assert connect in ("denied ECONNREFUSED", "denied ENETUNREACH"), connect
        # The private scratch directory is writable (the sandbox is not merely broken).
        assert sandboxed.ask(f"scratch {marker}") == "ok read 8 bytes"
        assert not any(p.exists() for p in outside)
        # Nothing was restarted: the same worker served every attempt and serves the next call.
        assert sandboxed.ask("hello there") == "hello there"
        assert sandboxed.pid == worker and sandboxed.pool.restarts == 0
    finally:
        for path in outside:
            path.unlink(missing_ok=True)


def test_without_the_sandbox_the_same_attempt_succeeds() -> None:
    # The control: a verified node keeps plain worker isolation (mixed mode), and reads the host.
    plain = Hostile(trust_level="verified")
    try:
        assert plain.ask("read /etc/passwd").startswith("ok read ")
    finally:
        plain.close()


def test_setsid_children_do_not_outlive_the_call(sandboxed: Hostile) -> None:
    before = sandboxed.processes()
    assert len(before) == 2  # bwrap's init (pid 1 inside) and the worker (pid 2)
    assert sandboxed.ask("setsid") == "ok left a setsid grandchild running"
    assert sandboxed.processes() == before
    assert sandboxed.ask("hello") == "hello" and sandboxed.pool.restarts == 0


def test_a_fork_bomb_stops_at_the_process_limit(sandboxed: Hostile) -> None:
    before = sandboxed.processes()
    outcome = sandboxed.ask("forkbomb 64")
    assert outcome.startswith("denied EAGAIN after "), outcome
    # The limit counts the worker and every child's attempts: far fewer than 64 forks.
    assert int(outcome.rsplit(" ", 2)[1]) < NPROC
    assert sandboxed.processes() == before  # every bomb process is gone
    # The worker is unharmed: it serves the next call, and can fork again (its count is back).
    assert sandboxed.ask("hello") == "hello" and sandboxed.pool.restarts == 0
    assert sandboxed.ask("forkbomb 2") == "ok forked 2"
    assert sandboxed.processes() == before


def test_the_process_limit_is_per_worker() -> None:
    # Two sandboxes of the same uid: one's exhausted limit does not stop the other.
    first, second = Hostile(), Hostile()
    try:
        assert first.ask("forkbomb 64").startswith("denied EAGAIN")
        assert second.ask("forkbomb 3") == "ok forked 3"
    finally:
        first.close()
        second.close()


@pytest.mark.kafka
def test_a_declared_network_capability_keeps_the_network(kafka_bootstrap: str) -> None:
    networked = Hostile(capabilities=("network",))
    try:
        address = kafka_bootstrap.split(",", maxsplit=1)[0]
        assert networked.ask(f"connect {address}") == f"ok connected to {address}"
        assert networked.ask("read /etc/passwd") == "denied ENOENT"  # still sandboxed otherwise
    finally:
        networked.close()


def test_no_bubblewrap_means_untrusted_nodes_are_refused_at_load() -> None:
    missing = Sandbox(bwrap="/nonexistent/bwrap")
    registry = ExtensionRegistry([("hostile.yaml", _manifest()),  # type: ignore[list-item]
                                  ("echo.yaml", bad_manifest("echo", trust_level="verified"))],
                                 sandbox=missing)
    status = {s.node_type: s for s in registry.statuses()}
    hostile = status["ext.hostile"]
    assert hostile.state == "refused" and hostile.reason is not None
    assert "\n" not in hostile.reason
    assert "untrusted node needs a sandbox: bubblewrap not found ('/nonexistent/bwrap'" in hostile.reason
    assert hostile.reason.startswith("extension bad_node 1.0.0 (hostile.yaml): ")
    assert status["ext.bad_echo"].state == "verified"  # verified nodes do not need it
    with pytest.raises(SandboxUnavailableError, match="bubblewrap not found"):
        registry.install(NodeRegistry(), strict=True)
    # Not strict: the graph builds, and every turn reaching the node fails with the reason.
    nodes = NodeRegistry()
    registry.install(nodes)
    factory = nodes.create("ext.hostile", node_id="n1", config={})
    with pytest.raises(ExtensionRefusedError, match="bubblewrap not found"):
        asyncio.run(_drain(factory()))


def test_a_failing_self_check_refuses_too(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailableError,
                       match=r"self-check failed \(bwrap: No permissions to create new namespace\)"):
        Sandbox(bwrap=str(fake)).check()


async def _drain(node: object) -> list[object]:
    return [x async for x in node.process(TranscriptText("hi", True), CTX)]  # type: ignore[attr-defined]


def _sandboxes() -> list[int]:
    """This process's bubblewrap children (one per sandboxed worker)."""
    out = []
    for pid in _children().get(os.getpid(), []):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv0 = f.read().split(b"\0", 1)[0]
        except OSError:
            continue
        if argv0.endswith(b"bwrap"):
            out.append(pid)
    return out


@pytest.mark.kafka
def test_a_hostile_node_in_a_running_processor_harms_nobody(
    kafka_bootstrap: str, unique_prefix: Callable[[], str], tmp_path: Path
) -> None:
    # The hostile node sits in every session's graph; one session attacks, the others talk.
    manifest = bad_manifest("node", package="tests.extensions.hostile")
    bundle = _bundle(("node",), (manifest,))
    prefix = unique_prefix()
    apply_topics(kafka_bootstrap, TopicLayout(prefix=prefix, partitions=2))
    extensions = ExtensionRegistry([("hostile.yaml", manifest)], pool_size=2,
                                   sandbox=Sandbox(nproc=NPROC))
    config = ProcessorConfig(
        bootstrap=kafka_bootstrap, prefix=prefix, bundle=bundle, drain_grace_s=10,
        store=tmp_path / "store", registry=extensions.node_registry(bundle=bundle, strict=True))
    attacks = ("forkbomb 64", "setsid", "read passwd", "connect kafka", "write repo", "write tmp")
    try:
        with ProcessorThread(config) as running:
            sandboxes = _sandboxes()
            assert len(sandboxes) == 2  # the pool, started with the graph
            client = VoiceClient(bootstrap=kafka_bootstrap, prefix=prefix, tenant_id="acme")
            good = [client.open_session(f"good{n}") for n in range(2)]
            attacker = client.open_session("attacker")
            client.flush()
            _wait_for(lambda: running.processor.stats.sessions_admitted >= 3, 30, "sessions admitted")
            turns = 0
            for attack in attacks:
                attacker.send_transcript(attack)
                for s in good:
                    s.send_transcript("what time is it")
                client.flush()
                turns += 1 + len(good)
                _wait_for(_closed_at_least(running, turns), 30, f"turns after {attack}")
                # No process of the attack outlives its call.
                assert all(len(_descendants(pid)) == 2 for pid in sandboxes), attack
            stats = running.processor.stats
            assert _sandboxes() == sandboxes  # no worker was replaced
    finally:
        extensions.close()
        escaped = [Path(NAMED[name]) for name in ("repo", "tmp")]
        assert not any(p.exists() for p in escaped)
        for path in escaped:
            path.unlink(missing_ok=True)
    rows = read_log(kafka_bootstrap, prefix, partitions=2)
    # What the hostile node answered (its NodeOutput in the attacker's turns): all stopped.
    answers = [r.event.payload.text for r in rows if r.event.session_id == "attacker"
               and r.event.node_id == "bad_node" and isinstance(r.event.payload, ev.NodeOutput)]
    assert len(answers) == len(attacks), answers
    assert answers[0].startswith("denied EAGAIN after "), answers  # forkbomb
    assert answers[1:5] == ["ok left a setsid grandchild running",  # (and it was killed)
                            "denied ENOENT", "denied ECONNREFUSED", "denied EACCES"]
    assert answers[5] in ("denied ENOENT", "denied EACCES")  # write /tmp (see above)
    errors = [(r.event.session_id, r.event.payload) for r in rows if isinstance(r.event.payload, ev.NodeError)]
    assert stats.turns_committed == turns and stats.turns_aborted == 0, errors
    assert check_log(rows, store=tmp_path / "store") == []


def test_a_sandbox_that_dies_at_start_fails_calls_instead_of_hanging(tmp_path: Path) -> None:
    # Passes the load-time check, then cannot start a worker: each call must fail with the
    # reason, and the worker must not be respawned in a loop.
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    fake.chmod(0o755)
    spec = WorkerSpec(name="ext.bad_echo", target="tests.extensions.bad_nodes.echo:build",
                      sandbox=Sandbox(bwrap=str(fake)))
    pool = WorkerPool(spec, size=1)
    pool.prestart()

    async def scenario() -> None:
        for _ in range(2):
            node = IsolatedNode(pool, timeout_s=1.0)
            with pytest.raises(ExtensionRefusedError,
                               match=r"exited with status 1 before it started, 3 times "
                                     r"\(stderr: bwrap: setting up uid map: Permission denied\)"):
                await asyncio.wait_for(_drain(node), 60)  # a guard against the old hang only

    try:
        asyncio.run(scenario())
        assert pool.restarts == 2  # three starts in all, then no more
    finally:
        pool.close()


def test_an_installed_distribution_runs_in_the_sandbox() -> None:
    # The example extension (a wheel-installed distribution), admitted as untrusted: the
    # sandbox binds its package directory from site-packages, and it serves calls.
    from pipelines.loader import load_artifact
    from pipelines.models import ExtensionManifest

    loaded, issues = load_artifact(REPO / "pipelines/extensions/custom_sentiment_node_v1.yaml")
    assert loaded is not None and isinstance(loaded.model, ExtensionManifest), issues
    manifest = loaded.model.model_copy(update={"trust_level": "untrusted"})
    registry = ExtensionRegistry([("sentiment.yaml", manifest)])
    (status,) = registry.statuses()
    assert status.state == "verified" and status.sandboxed, status.reason
    spec = registry.worker_spec(status)
    assert spec.sandbox is not None and spec.sandbox.network is False
    assert [Path(p).name for p in spec.sandbox.read_only] == ["rspp_sentiment"]
    pool = WorkerPool(spec, size=1)
    pool.prestart()

    async def scenario() -> list[object]:
        return await _drain(IsolatedNode(pool, timeout_s=5.0))

    try:
        assert asyncio.run(scenario()) == [TranscriptText("hi", True)]
    finally:
        pool.close()


def test_rspp_ext_verify_names_the_missing_sandbox_in_one_line(tmp_path: Path) -> None:
    # bwrap is looked up on PATH: without it the untrusted manifest is refused, exit 1.
    text = (REPO / "pipelines/extensions/custom_sentiment_node_v1.yaml").read_text()
    assert "trust_level: verified" in text
    (tmp_path / "untrusted.yaml").write_text(text.replace("trust_level: verified",
                                                          "trust_level: untrusted"))
    code = "import sys; from streams.cli import main; main(sys.argv[1:])"
    env = {**os.environ, "PATH": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code, "ext", "verify", "--dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("rspp: error: extension custom_sentiment_node 1.0.0 (")
    assert "untrusted node needs a sandbox: bubblewrap not found ('bwrap'" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
