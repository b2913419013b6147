"""`meter equivalents set | list | delete` against a real database, and its --help."""

from __future__ import annotations

import asyncio

import pytest

from e2e.test_label_rollups import meter_cli
from meterd.cli import main


@pytest.mark.parametrize("command", ["equivalents", "equivalents set", "equivalents list", "equivalents delete"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command.split(), "--help"])
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert f"usage: meter {command}" in out
    if command == "equivalents set":
        assert "PROVIDER/MODEL" in out and "2-32 models per group" in out


async def test_set_list_delete_and_refusals(fresh_database_url):
    url = fresh_database_url

    def cli(*args):
        return asyncio.to_thread(meter_cli, url, *args)

    made = await cli("keys", "create", "--tenant", "acme", "--role", "admin")
    assert made.returncode == 0, made.stderr
    done = await cli(
        "equivalents", "set", "small", "openai/gpt-4.1-mini", "Anthropic/claude-haiku-4-5", "--tenant", "acme"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "created\tsmall\topenai/gpt-4.1-mini anthropic/claude-haiku-4-5\n"
    again = await cli("equivalents", "set", "small", "openai/gpt-4.1-mini", "openai/gpt-4.1-nano", "--tenant", "acme")
    assert again.stdout.startswith("replaced\tsmall\t")
    listed = await cli("equivalents", "list", "--tenant", "acme")
    assert listed.stdout == "small\topenai/gpt-4.1-mini openai/gpt-4.1-nano\n"
    bad = await cli("equivalents", "set", "small", "openai/gpt-4.1-mini", "--tenant", "acme")
    assert bad.returncode != 0 and "2-32 distinct models" in bad.stderr
    unknown = await cli("equivalents", "set", "g", "a/b", "a/c", "--tenant", "nobody")
    assert unknown.returncode != 0 and "does not exist" in unknown.stderr
    gone = await cli("equivalents", "delete", "small", "--tenant", "acme")
    assert gone.returncode == 0 and gone.stdout == "deleted small\n"
    missing = await cli("equivalents", "delete", "small", "--tenant", "acme")
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    assert (await cli("equivalents", "list", "--tenant", "acme")).stdout == ""
