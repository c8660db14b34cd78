"""What the demo's simulated callers say, read from the example's ``utterances.tsv``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streams.config import repo_root
from streams.errors import StreamsError

__all__ = ["EXAMPLE_DIR", "Scenario", "Utterance", "load_scenario"]

EXAMPLE_DIR = repo_root() / "pipelines" / "examples" / "simple_livekit_voice_v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Utterance:
    text: str
    reply: str
    barge_in: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    utterances: tuple[Utterance, ...]

    def script_for(self, session_index: int, turns: int) -> tuple[Utterance, ...]:
        """Each caller starts at a different utterance, so sessions differ but cover all."""
        n = len(self.utterances)
        return tuple(self.utterances[(session_index + k) % n] for k in range(turns))


def load_scenario(path: Path | None = None) -> Scenario:
    path = path or EXAMPLE_DIR / "utterances.tsv"
    rows: list[Utterance] = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 3 or parts[2] not in ("yes", "no"):
            raise StreamsError(f"{path}:{lineno}: expected `text<TAB>reply<TAB>yes|no`")
        rows.append(Utterance(text=parts[0], reply=parts[1], barge_in=parts[2] == "yes"))
    if not rows:
        raise StreamsError(f"{path}: no utterances")
    return Scenario(utterances=tuple(rows))
