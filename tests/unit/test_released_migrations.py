"""Released migrations are immutable: migrations/released.sha256 (written by `make migrations-release`)
holds the checksum of every released file, and a released file that no longer matches fails here, in
CI, instead of at the start of every database that already ran it."""

from __future__ import annotations

import hashlib
import re

from meterd.store.migrate import discover, migrations_dir

MANIFEST = migrations_dir() / "released.sha256"


def _released() -> dict[str, str]:
    entries = {}
    for line in MANIFEST.read_text().splitlines():
        if line.strip():
            checksum, name = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line).groups()
            entries[name] = checksum
    return entries


def test_every_released_migration_still_has_its_released_checksum():
    released = _released()
    assert released, "the manifest lists no migration"
    for name, checksum in released.items():
        path = MANIFEST.parent / name
        assert path.exists(), f"{name} was released and must not be removed or renamed"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == checksum, (
            f"{name} was released and must never change (comments included): restore it and put the "
            "change in a new migration"
        )


def test_the_checksum_the_server_records_is_the_released_one():
    # The server hashes the text it reads; a file whose bytes differ from it (CRLF) would pass here
    # yet fail at start.
    by_name = {m.name: m.checksum for m in discover()}
    for name, checksum in _released().items():
        assert by_name[name] == checksum


def test_unreleased_migrations_come_after_every_released_one(capsys):
    released = _released()
    versions = {m.name: m.version for m in discover()}
    unreleased = sorted(set(versions) - set(released))
    if unreleased:
        with capsys.disabled():
            print(f"\nunreleased migrations (make migrations-release records them): {', '.join(unreleased)}")
    # A new file numbered below a released one would run out of order on databases that already ran it.
    newest_released = max(versions[name] for name in released)
    assert all(versions[name] > newest_released for name in unreleased), unreleased
