"""Every `meter` subcommand's --help runs: the parser tree is walked, so a new subcommand is covered
without anyone remembering to add it here."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from meterd.cli import build_parser, main


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


COMMANDS = list(_commands(build_parser()))


def test_the_walk_finds_the_known_subcommands():
    assert {
        ("serve",),
        ("keys", "create"),
        ("alerts", "rules", "set"),
        ("prices", "load"),
        ("dimensions", "backfill"),
    } <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "meter")
def test_help_of_every_subcommand_prints_and_exits_0(path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        main([*path, "--help"])
    assert exit_info.value.code == 0
    assert "usage: meter" in out.getvalue()
    assert "--help" in out.getvalue()
