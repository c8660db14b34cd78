"""The one place a command's error becomes one line: `streams.cli.main` + `error_line`."""

from __future__ import annotations

import errno
import os

import pytest
import typer
from confluent_kafka import KafkaError, KafkaException

import streams.cli
from replay.errors import ReplayError
from streams.cli import main
from streams.errors import StreamsError
from streams.output import error_line

ROOTS = (StreamsError, ReplayError)


def test_os_errors_name_the_file() -> None:
    line, code = error_line(IsADirectoryError(errno.EISDIR, "Is a directory", "/etc"))
    assert (line, code) == ("'/etc': Is a directory", 1)
    line, _ = error_line(FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y"))
    assert line == "'/x/y': no such file or directory"


def test_root_errors_keep_their_exit_code_and_become_one_line() -> None:
    assert error_line(ReplayError("bad\n  input"), root_errors=ROOTS) == ("bad input", 2)
    assert error_line(StreamsError("broker gone"), root_errors=ROOTS) == ("broker gone", 1)


def test_kafka_errors_and_unexpected_errors_say_what_they_are() -> None:
    line, code = error_line(KafkaException(KafkaError(KafkaError._TRANSPORT, "refused")))
    assert code == 1 and line == "KafkaException: Kafka: refused"
    assert error_line(ValueError("x")) == ("ValueError: x", 1)


def test_non_utf8_text_is_escaped_not_fatal() -> None:
    name = os.fsdecode(b"f\xff")
    line, _ = error_line(FileNotFoundError(errno.ENOENT, "gone", name))
    assert line == "'f\\udcff': no such file or directory"
    line.encode("utf-8")  # printable as UTF-8


@pytest.fixture
def broken_app(monkeypatch: pytest.MonkeyPatch) -> None:
    app = typer.Typer()

    @app.command()
    def boom(n: int = 1) -> None:
        raise RuntimeError(f"unexpected {n}")

    @app.command()
    def fine() -> None:
        """A second command, so `boom` stays a subcommand."""

    streams.cli._register()
    monkeypatch.setattr(streams.cli, "app", app)


def test_an_unexpected_error_is_one_line_and_rspp_debug_shows_the_traceback(
    broken_app: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RSPP_DEBUG", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["boom", "--n", "7"])
    assert done.value.code == 1
    assert capsys.readouterr().err == "rspp: error: RuntimeError: unexpected 7\n"
    monkeypatch.setenv("RSPP_DEBUG", "1")
    with pytest.raises(RuntimeError, match="unexpected 7"):
        main(["boom", "--n", "7"])


def test_usage_errors_are_one_line_with_exit_2(
    broken_app: None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["boom", "--n", "seven"])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.count("\n") == 1
    assert err.startswith("rspp: error: rspp boom: Invalid value for '--n'") and "--help" in err
