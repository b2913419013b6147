"""The request messages the clients build, for other code that sends the same RPCs (the server's
console and report digests): one builder per request, with the clients' defaults and validation."""

from meter._core import alerts_request, as_enum, usage_request

__all__ = ["alerts_request", "as_enum", "usage_request"]
