"""The demo's live view: one row per caller, refreshed from the log follower."""

from __future__ import annotations

from rich.table import Table

from streams.adapters import LogFollower

__all__ = ["live_table"]

_STYLE = {
    "SPEAKING": "green",
    "ABORTED": "red",
    "COMMITTED": "cyan",
    "ACTIVE": "yellow",
    "OPEN": "yellow",
}


def live_table(follower: LogFollower, *, title: str) -> Table:
    table = Table(title=title, expand=False)
    for col in ("session", "turn", "state", "heard", "reply", "first audio", "turns", "log events"):
        table.add_column(col, no_wrap=True)
    with follower.lock:
        views = sorted(follower.sessions.values(), key=lambda v: v.session_id)
        rows = []
        for view in views:
            if view.session_id.startswith("__"):
                continue
            turn = next(reversed(view.turns.values()), None) if view.turns else None
            closed = sum(1 for t in view.turns.values() if t.closed_at is not None)
            if turn is None:
                rows.append(
                    (
                        view.session_id,
                        "-",
                        "ADMITTED" if view.admitted else "-",
                        "",
                        "",
                        "",
                        "0",
                        str(view.events),
                    )
                )
                continue
            state = (
                turn.state
                if turn.closed_at is None
                else ("ABORTED" if turn.abort_reason else "COMMITTED")
            )
            style = _STYLE.get(state, "white")
            rows.append(
                (
                    view.session_id,
                    turn.turn_id.rsplit("-", 1)[-1],
                    f"[{style}]{state}[/]",
                    turn.transcript[:28],
                    turn.reply[:24],
                    "" if turn.first_audio_at is None else "yes",
                    str(closed),
                    str(view.events),
                )
            )
    for row in rows:
        table.add_row(*row)
    table.caption = f"{follower.events} log events read (read_committed)"
    return table
