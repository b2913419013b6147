"""Guards against two classes of flaky tests, so they stay fixed:

- no `sleep` as a synchronisation barrier: tests wait for a condition with a deadline
  (meter_testing.waiting.eventually, AlertReader.wait_for/subscribed/caught_up). A sleep that is
  not a barrier (a fake server that must be slow, an outage that must last) says so on its line
  with `# sleep-ok: <why>`;
- no "now" from the real clock where the date matters: a test reads the wall clock only where its
  assertions hold on any date, and the line says so with `# any-date: <why>`; the date-sensitive
  tests inject a clock and run under meter_testing.dates.FIXED_NOWS."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SLEEP = re.compile(r"\b(asyncio|time)\.sleep\(")
WALL_CLOCK = re.compile(r"\b(datetime\.now|\.utcnow|date\.today|time\.time)\(")
POLL_HELPER = TESTS / "meter_testing" / "waiting.py"


def offending(pattern: re.Pattern, marker: str, skip: tuple[Path, ...] = ()) -> list[str]:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        if path in skip or path == Path(__file__).resolve():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and f"# {marker}:" not in line:
                found.append(f"{path.relative_to(TESTS)}:{n}: {line.strip()}")
    return found


def test_no_sleep_is_used_as_a_barrier():
    assert offending(SLEEP, "sleep-ok", skip=(POLL_HELPER,)) == [], (
        "wait for the condition (meter_testing.waiting.eventually) instead of sleeping"
    )


def test_the_wall_clock_is_read_only_where_the_date_does_not_matter():
    assert offending(WALL_CLOCK, "any-date") == [], (
        "inject a clock (meter_testing.clock.FakeClock) and run under meter_testing.dates.FIXED_NOWS"
    )


def test_the_guards_can_fail(tmp_path):
    assert SLEEP.search("    await asyncio.sleep(0.3)") and SLEEP.search("time.sleep(1)")
    assert WALL_CLOCK.search("now = dt.datetime.now(dt.UTC)") and WALL_CLOCK.search("t = time.time()")
    assert not WALL_CLOCK.search("time.monotonic()")
