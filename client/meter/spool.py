"""Bounded local spools of records that could not be delivered while Meter was unreachable.

A spool holds `RecordCallRequest`s keyed by `call_id` (the idempotency key: delivering one twice
counts once), oldest first. When it is full a new record is dropped and counted in `dropped` (and
logged): the bound protects the process's memory and disk during a long outage.

* `MemorySpool(max_records)`: lost when the process exits.
* `FileSpool(path, max_records)`: an append-only file of length-prefixed serialized requests,
  `fsync`ed on every append, rewritten (compacted, atomically by rename) after each delivery, and
  read back when the next process opens it; so records survive a crash or restart. One process
  owns a spool file at a time (an exclusive `flock`); give each process its own path.
"""

from __future__ import annotations

import collections
import fcntl
import logging
import os
import struct
import threading
from pathlib import Path

from meter.v1 import meter_pb2

log = logging.getLogger("meter.spool")

DEFAULT_MAX_RECORDS = 10_000
_LEN = struct.Struct(">I")


class MemorySpool:
    def __init__(self, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        self.max_records = max_records
        self.dropped = 0
        self._items: collections.OrderedDict[str, meter_pb2.RecordCallRequest] = collections.OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def append(self, request: meter_pb2.RecordCallRequest) -> bool:
        """Keep a record for later delivery; False when the spool is full and it was dropped."""
        with self._lock:
            if request.call_id in self._items:
                return True
            if len(self._items) >= self.max_records:
                self.dropped += 1
                log.error("meter spool full (%d records): dropped record %s", self.max_records, request.call_id)
                return False
            self._items[request.call_id] = request
            self._persist_append(request)
            return True

    def head(self, n: int) -> list[meter_pb2.RecordCallRequest]:
        """The n oldest records (they stay until `remove`)."""
        with self._lock:
            out: list[meter_pb2.RecordCallRequest] = []
            for request in self._items.values():
                if len(out) == n:
                    break
                out.append(request)
            return out

    def remove(self, call_ids) -> None:
        """Forget delivered (or permanently rejected) records."""
        with self._lock:
            before = len(self._items)
            for call_id in call_ids:
                self._items.pop(call_id, None)
            if len(self._items) != before:
                self._persist_all()

    def close(self) -> None:
        pass

    def _persist_append(self, request) -> None:
        pass

    def _persist_all(self) -> None:
        pass


class FileSpool(MemorySpool):
    def __init__(self, path: str | os.PathLike, max_records: int = DEFAULT_MAX_RECORDS, *, fsync: bool = True) -> None:
        super().__init__(max_records)
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lockfile = open(self.path.with_name(self.path.name + ".lock"), "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lockfile.close()
            raise RuntimeError(f"spool file {self.path} is in use by another process") from None
        torn = self._load()
        if torn:
            self._persist_all()  # drop a torn tail (a crash mid-append) for good

    def _load(self) -> bool:
        if not self.path.exists():
            return False
        data = self.path.read_bytes()
        pos = 0
        while pos + _LEN.size <= len(data):
            (size,) = _LEN.unpack_from(data, pos)
            if pos + _LEN.size + size > len(data):
                break
            request = meter_pb2.RecordCallRequest.FromString(data[pos + _LEN.size : pos + _LEN.size + size])
            if len(self._items) < self.max_records:
                self._items.setdefault(request.call_id, request)
            else:
                self.dropped += 1
            pos += _LEN.size + size
        if pos != len(data):
            log.warning("meter spool %s: ignored a torn record at byte %d", self.path, pos)
        return pos != len(data)

    def _write(self, f, request) -> None:
        payload = request.SerializeToString()
        f.write(_LEN.pack(len(payload)) + payload)

    def _persist_append(self, request) -> None:
        with self.path.open("ab") as f:
            self._write(f, request)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())

    def _persist_all(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("wb") as f:
            for request in self._items.values():
                self._write(f, request)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def close(self) -> None:
        if not self._lockfile.closed:
            fcntl.flock(self._lockfile, fcntl.LOCK_UN)
            self._lockfile.close()
