"""The serving process's collector settings (meterd/heap.py), checked in a process of their own:
freezing is for a server's heap, never for the test runner's."""

from __future__ import annotations

import subprocess
import sys


def test_settle_freezes_what_exists_and_raises_the_young_threshold():
    probe = (
        "import gc\n"
        "from meterd import heap\n"
        "assert gc.get_freeze_count() == 0\n"
        "heap.settle()\n"
        "print(gc.get_threshold() == heap.THRESHOLDS, gc.get_freeze_count() > 1000)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]
