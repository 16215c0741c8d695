"""The CLI's push progress bars: drawn on a terminal, nothing otherwise."""

from __future__ import annotations

import io

from rich.console import Console

from flows.cli_platform import push_progress_bars
from tasks.progress import track_push

EVENTS = [
    {"status": "The push refers to repository [127.0.0.1:5000/app]"},
    {"status": "Pushing", "progressDetail": {"current": 50, "total": 100}, "id": "l1"},
    {"status": "Pushed", "progressDetail": {}, "id": "l1"},
    {"progressDetail": {}, "aux": {"Tag": "v1", "Digest": "sha256:ab", "Size": 1}},
]


def _push_under(console: Console) -> str:
    with push_progress_bars(console):
        on_event = track_push("pushToMyRegistry", "127.0.0.1:5000/app", ["v1"])
        for event in EVENTS:
            on_event(event)
    output = console.file
    assert isinstance(output, io.StringIO)
    return output.getvalue()


def test_a_terminal_gets_a_bar_per_push_step() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    drawn = _push_under(console)
    assert "push pushToMyRegistry -> 127.0.0.1:5000/app:v1" in drawn
    assert "100%" in drawn


def test_a_log_file_gets_nothing() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    assert _push_under(console) == ""
