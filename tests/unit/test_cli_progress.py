"""The progress bar of the long direct commands: drawn on a terminal only, throttled, cleared at the end."""

from __future__ import annotations

import io

from meterd.cli_progress import Progress, line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_written_when_the_stream_is_not_a_terminal():
    stream = io.StringIO()
    with Progress("reprice", stream=stream) as bar:
        bar(5, 10)
        bar(10, 10)
    assert stream.getvalue() == ""


def test_a_terminal_sees_the_bar_throttled_and_then_a_clean_line():
    stream, clock = Terminal(), Clock()
    with Progress("retention", stream=stream, clock=clock, interval=1.0) as bar:
        bar(1, 4)
        clock.now += 0.2
        bar(2, 4)  # within the interval: not drawn
        clock.now += 1.0
        bar(3, 4)
        bar(4, 4)  # the last step is always drawn
        drawn = stream.getvalue()
    assert drawn.count("\r") == 3
    assert "retention [######..................]  25% 1/4" in drawn and " 2/4" not in drawn
    assert drawn.endswith("100% 4/4")
    end = stream.getvalue()[len(drawn) :]
    assert end.startswith("\r") and end.endswith("\r") and not end.strip()  # the line is wiped


def test_without_a_total_a_count_and_a_rate():
    assert line("reprice: calls examined", 25_000, None, 2.0) == "reprice: calls examined 25,000 (12,500/s)"
    assert line("x", 0, None, 0.0) == "x 0"
    assert line("x", 7, 5, 1.0).endswith("100% 7/5")  # more than announced: capped at a full bar
