"""The bounds of domain/bounds.py applied to every Meter and MeterAdmin request before its handler runs.

One generic walk over the message's set fields (by descriptor), so no RPC carries its own range
checks and a new field without a bound fails tests/unit/test_bounds.py. Undecodable bytes (bad
wire format, invalid UTF-8 in a string) would make grpc answer UNKNOWN from inside the framework;
the wrapped deserializer hands the handler a marker instead, answered with INVALID_ARGUMENT.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor

from meterd.api.wrap_once import WrapOnceInterceptor, stream_behavior
from meterd.domain import bounds
from meterd.domain.errors import InvalidArgument

SERVICE_PREFIXES = ("/meter.v1.Meter/", "/meter.v1.MeterAdmin/")
_PACKAGE = "meter.v1."
_DEFAULT_TEXT = bounds.Text(bounds.TEXT)  # strings without an entry (tests keep there being none)
_PROTO_SPAN_NS = bounds.PROTO_MAX_DURATION_S * bounds.SECOND_NANOS
_ANY_SPAN = bounds.Span(-_PROTO_SPAN_NS, _PROTO_SPAN_NS)
_INTS = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_FIXED32,
    FieldDescriptor.TYPE_SFIXED64,
    FieldDescriptor.TYPE_SFIXED32,
}


class Undecodable:
    """What the deserializer returns for bytes that are not the method's request message."""

    __slots__ = ("type_name", "reason")

    def __init__(self, type_name: str, reason: str) -> None:
        self.type_name, self.reason = type_name, reason


def bound_of(message_name: str, field: str) -> bounds.Bound | None:
    return bounds.FIELDS.get(message_name.removeprefix(_PACKAGE), {}).get(field)


def violations(msg, prefix: str = "") -> list[tuple[str, str]]:
    """Every bound the message breaks, as (field path, what is wrong)."""
    out: list[tuple[str, str]] = []
    _walk(msg, prefix, out)
    return out


_TEXT, _INT, _OTHER = "text", "int", "other"


# field name -> (fast-path kind, bound): the kind says which Bound it is (Text for _TEXT, Int for
# _INT), which _walk relies on instead of isinstance on the hot path; hence Any for the bound.
_Fields = dict[str, tuple[str, Any]]


@functools.cache
def _plan(descriptor) -> tuple[tuple[str, ...], _Fields]:
    """(required fields, field name -> (fast-path kind, bound)) of a message type, computed once: the
    hot path (RecordCall, CheckQuota) is mostly strings and ints, checked inline in _walk."""
    table = bounds.FIELDS.get(descriptor.full_name.removeprefix(_PACKAGE), {})
    required = tuple(
        name
        for name, b in table.items()
        if (isinstance(b, bounds.Text) and b.required) or (isinstance(b, bounds.Items) and b.min > 0)
    )
    fields: _Fields = {}
    for field in descriptor.fields:
        bound = table.get(field.name)
        kind = _OTHER
        if not field.is_repeated and field.type == FieldDescriptor.TYPE_STRING:
            kind, bound = _TEXT, bound if isinstance(bound, bounds.Text) else _DEFAULT_TEXT
        elif not field.is_repeated and field.type in _INTS and isinstance(bound, bounds.Int):
            kind = _INT
        fields[field.name] = (kind, bound)
    return required, fields


def _walk(msg, prefix: str, out: list[tuple[str, str]]) -> None:
    required, fields = _plan(msg.DESCRIPTOR)
    # Unset fields are not listed below, so a required one is looked at here (set but blank: below).
    out.extend((prefix + f, "required") for f in required if not len(getattr(msg, f)))
    for field, value in msg.ListFields():
        kind, bound = fields[field.name]
        if kind is _TEXT:
            if (len(value) > bound.max_len or "\x00" in value or (bound.required and not value.strip())) and (
                why := bounds.text_violation(bound, value)
            ):
                out.append((prefix + field.name, why))
        elif kind is _INT:
            if not bound.lo <= value <= bound.hi and (why := bounds.int_violation(bound, value)):
                out.append((prefix + field.name, why))
        elif field.is_repeated:
            _repeated(field, value, bound, prefix + field.name, out)
        else:
            _single(field, value, bound, prefix + field.name, out)


def _repeated(field, value, bound, path: str, out: list[tuple[str, str]]) -> None:
    items = bound if isinstance(bound, bounds.Items) else bounds.Items(bounds.TEXT)
    if why := bounds.count_violation(items, len(value)):
        out.append((path, why))
        if len(value) > items.max:
            return  # do not walk a huge list item by item
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_bound, value_bound = items.key or _DEFAULT_TEXT, items.value or _DEFAULT_TEXT
        for key, val in value.items():
            if why := bounds.text_violation(key_bound, key):
                out.append((f"{path}[{bounds.quote(key, bounds.NAME)}]", f"key {why}"))
            if why := bounds.text_violation(value_bound, val):
                out.append((f"{path}[{bounds.quote(key, bounds.NAME)}]", why))
        return
    if items.per_item:
        return
    for i, element in enumerate(value):
        _single(field, element, items.each, f"{path}[{i}]", out)


def _single(field, value, bound, path: str, out: list[tuple[str, str]]) -> None:
    kind = field.type
    why = None
    if kind == FieldDescriptor.TYPE_STRING:
        why = bounds.text_violation(bound if isinstance(bound, bounds.Text) else _DEFAULT_TEXT, value)
    elif kind in _INTS:
        why = bounds.int_violation(bound, value) if isinstance(bound, bounds.Int) else None
    elif kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        why = bounds.real_violation(bound if isinstance(bound, bounds.Real) else bounds.Real(-1e300, 1e300), value)
    elif kind == FieldDescriptor.TYPE_ENUM:
        if value not in field.enum_type.values_by_number:
            why = f"unknown value {value} of {field.enum_type.full_name}"
    elif kind == FieldDescriptor.TYPE_MESSAGE:
        name = field.message_type.full_name
        if name == "google.protobuf.Timestamp":
            why = bounds.timestamp_violation(value.seconds, value.nanos)
        elif name == "google.protobuf.Duration":
            span = bound if isinstance(bound, bounds.Span) else _ANY_SPAN
            why = bounds.duration_violation(span, value.seconds, value.nanos)
        else:
            _walk(value, path + ".", out)
    elif kind == FieldDescriptor.TYPE_BYTES and len(value) > bounds.TEXT:
        why = f"at most {bounds.TEXT} bytes"
    if why:
        out.append((path, why))


def check(request) -> None:
    """InvalidArgument unless the request decoded and is within every bound."""
    if isinstance(request, Undecodable):
        raise InvalidArgument([("request", f"not a valid {request.type_name} message: {request.reason}")])
    if found := violations(request):
        raise InvalidArgument(found)


def _safe(deserializer: Callable[[bytes], object] | None, type_name: str):
    if deserializer is None:
        return None

    def deserialize(raw: bytes):
        try:
            return deserializer(raw)
        except Exception as exc:  # noqa: BLE001 - any undecodable input is the caller's error
            return Undecodable(type_name, bounds.quote(str(exc).rsplit(":", 1)[-1].strip() or type(exc).__name__, 80))

    return deserialize


class BoundsInterceptor(WrapOnceInterceptor):
    """Placed after the authenticating interceptor: that one turns the InvalidArgument raised here into
    a status with BadRequest details, and unauthenticated callers learn nothing about requests."""

    def applies(self, method: str) -> bool:
        return method.startswith(SERVICE_PREFIXES)

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        return _wrap(method, handler)


def _wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    type_name = method.rsplit("/", 1)[-1] + "Request"
    deserialize = _safe(handler.request_deserializer, f"meter.v1.{type_name}")
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary_unary(request, context):
            check(request)
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, deserialize, handler.response_serializer)
    if handler.unary_stream:
        inner_stream = stream_behavior(handler)

        async def unary_stream(request, context):
            check(request)
            async for response in inner_stream(request, context):
                yield response

        return grpc.unary_stream_rpc_method_handler(unary_stream, deserialize, handler.response_serializer)
    return handler
