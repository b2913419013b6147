"""Small conversions between protobuf well-known types and Python values."""

from __future__ import annotations

import datetime as dt
from typing import TypeVar, cast, overload

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from meterd.domain.bounds import INT64_MAX
from meterd.domain.clock import EPOCH

E = TypeVar("E", bound=int)


def enum_value(enum: type[E], name: str) -> E:
    """The value called `name` of a proto enum, typed as that enum. protoc's stubs type enum fields by
    the enum's class (an int subclass); at run time that class is an EnumTypeWrapper whose Value()
    returns a plain int: the one cast between the two lives here."""
    return cast(E, cast(EnumTypeWrapper, enum).Value(name))


@overload
def ts(value: dt.datetime) -> timestamp_pb2.Timestamp: ...
@overload
def ts(value: None) -> None: ...
@overload
def ts(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None: ...
def ts(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    out = timestamp_pb2.Timestamp()
    set_ts(out, value)
    return out


def set_ts(field: timestamp_pb2.Timestamp, value: dt.datetime) -> None:
    """Fill a Timestamp (e.g. a message's field, in place: building one and copying it in costs twice).
    Direct arithmetic: Timestamp.FromDatetime is several times slower on the hot path."""
    delta = value - EPOCH
    field.seconds = delta.days * 86400 + delta.seconds
    field.nanos = delta.microseconds * 1000


def from_ts(msg, field: str) -> dt.datetime | None:
    """The Timestamp field's value as an aware UTC datetime, or None when unset."""
    if not msg.HasField(field):
        return None
    return getattr(msg, field).ToDatetime(tzinfo=dt.UTC)


def micros(msg, field: str) -> int | None:
    """A Duration field in whole microseconds, or None when unset."""
    if not msg.HasField(field):
        return None
    return getattr(msg, field).ToMicroseconds()


def duration_us(us: int | None) -> duration_pb2.Duration | None:
    if us is None:
        return None
    out = duration_pb2.Duration()
    out.FromMicroseconds(us)
    return out


def int64(n: int) -> int:
    """Sums over unbounded ranges are numeric in SQL; int64 fields saturate rather than fail the reply."""
    return min(n, INT64_MAX)
