"""The one progress helper: plain lines off a terminal (bounded, nested bars fewer), nothing on a quiet
console, a plan that changes, and a rich bar on a terminal that lines printed meanwhile do not break."""

from __future__ import annotations

import io
import re

from rich.console import Console

from langbuild.core import progress as progress_module
from langbuild.core.progress import PLAIN_STEPS, progress


def _plain() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=200), buffer


def _lines(buffer: io.StringIO, label: str) -> list[str]:
    return [line.strip() for line in buffer.getvalue().splitlines() if line.strip().startswith(f"{label}:")]


def test_off_a_terminal_a_bar_prints_a_line_every_tenth_with_its_total_and_eta():
    console, buffer = _plain()
    with progress(console, "units", 1000, "units") as bar:
        for _ in range(1000):
            bar.advance()
    lines = _lines(buffer, "units")
    assert len(lines) == PLAIN_STEPS
    assert lines[0].startswith("units: 100/1000 units") and "ETA" in lines[0]
    assert lines[-1].startswith("units: 1000/1000 units")
    assert "\r" not in buffer.getvalue()


def test_a_quiet_console_prints_nothing():
    buffer = io.StringIO()
    quiet = Console(file=buffer, quiet=True)
    with progress(quiet, "outer", 3, "things") as outer:
        with progress(quiet, "inner", 5, "steps") as inner:
            inner.advance(5)
            inner.print("a line from the loop")
        outer.advance(3)
    assert buffer.getvalue() == ""
    assert not progress_module._streams


def test_nested_bars_print_at_half_way_and_at_the_end_only():
    console, buffer = _plain()
    with progress(console, "outer", 4, "candidates") as outer:
        for _ in range(4):
            with progress(console, "inner", 100, "windows") as inner:
                for _ in range(100):
                    inner.advance()
            outer.advance()
    inner_lines = _lines(buffer, "inner")
    assert len(inner_lines) == 4 * 2 and inner_lines[1].startswith("inner: 100/100 windows")
    assert _lines(buffer, "outer")[-1].startswith("outer: 4/4 candidates")
    assert not progress_module._streams  # every bar closed


def test_a_plan_cut_short_ends_with_its_last_line():
    console, buffer = _plain()
    with progress(console, "sizes", 5, "sizes") as bar:
        bar.advance(2)
        bar.replan(2)
    assert _lines(buffer, "sizes")[-1].startswith("sizes: 2/2 sizes")


def test_on_a_terminal_nested_bars_render_and_printed_lines_survive():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system="standard")
    with progress(console, "outer", 2, "candidates") as outer:
        for candidate in range(2):
            with progress(console, "inner", 3, "windows") as inner:
                for _ in range(3):
                    inner.advance()
            inner.print(f"bar line {candidate}")
            console.print(f"step line {candidate}")  # the caller's own console, while the bar is drawn
            outer.advance()
    output = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())  # without the colour and cursor codes
    assert "━" in output  # a rich bar was drawn
    for candidate in range(2):
        assert f"bar line {candidate}" in output and f"step line {candidate}" in output
    assert not progress_module._streams
    console.print("after")  # the caller's console works as before once the bars are gone
    assert buffer.getvalue().endswith("after\n")
    assert "inner" not in output.split("step line 1")[-1]  # a closed bar's row is gone at once
