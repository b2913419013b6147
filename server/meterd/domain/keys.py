"""API keys: format, hashing and roles. A key reads "mk_<id>_<secret>"; only its SHA-256 is stored."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets

from meterd.domain.errors import InvalidArgument, Unauthenticated

ROLES = ("check", "record", "read", "admin")
_KEY_RE = re.compile(r"^mk_([a-z0-9]{12})_([A-Za-z0-9]{32})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
TENANT_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is calling: every query is scoped by tenant_id."""

    tenant_id: str
    key_id: str
    roles: frozenset[str]
    expires_at: dt.datetime | None = None
    bound_cert_subject: str = ""  # client certificate subject CN the key is bound to ("" = unbound)
    bound_san: str = ""  # a subject alternative name the client certificate must list ("" = unbound)

    def may(self, role: str) -> bool:
        return "admin" in self.roles or role in self.roles

    @property
    def bound(self) -> bool:
        return bool(self.bound_cert_subject or self.bound_san)

    def check_expiry(self, now: dt.datetime) -> None:
        if self.expires_at is not None and now >= self.expires_at:
            at = self.expires_at.astimezone(dt.UTC)
            raise Unauthenticated(f"API key {self.key_id} expired at {at:%Y-%m-%dT%H:%M:%SZ}")

    def check_binding(self, common_names: list[str], sans: list[str]) -> None:
        """The identity of the client certificate the connection presented (empty lists: none). A bound
        key with the wrong certificate is UNAUTHENTICATED, not PERMISSION_DENIED: the key alone is not a
        valid credential, like a revoked one; which identity it expects is never revealed."""
        if not self.bound:
            return
        if (self.bound_cert_subject and self.bound_cert_subject not in common_names) or (
            self.bound_san and self.bound_san not in sans
        ):
            if common_names:
                shown = f"CN={common_names[0][:64]!r}"
            else:
                shown = "a client certificate without a subject CN" if sans else "no client certificate"
            raise Unauthenticated(
                f"API key {self.key_id} is bound to a client certificate; this connection presented {shown}"
            )


def new_key() -> tuple[str, str]:
    """Returns (key id, full key). 32 base62 characters give ~190 bits: a plain hash is enough."""
    key_id = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    secret = "".join(secrets.choice(_ALPHABET + _ALPHABET.upper()[:26]) for _ in range(32))
    return key_id, f"mk_{key_id}_{secret}"


def hash_key(full_key: str) -> bytes:
    return hashlib.sha256(full_key.encode()).digest()


def check_format(full_key: str) -> None:
    if not _KEY_RE.match(full_key):
        raise Unauthenticated("malformed API key: expected 'authorization: Bearer mk_<id>_<secret>'")


def validate_roles(roles: list[str], field: str = "roles") -> list[str]:
    if not roles:
        raise InvalidArgument([(field, f"at least one role is required, out of {', '.join(ROLES)}")])
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise InvalidArgument([(field, f"unknown role(s) {unknown}; roles are {', '.join(ROLES)}")])
    return sorted(set(roles), key=ROLES.index)


def validate_tenant(tenant_id: str) -> str:
    if not TENANT_RE.match(tenant_id):
        raise InvalidArgument([("tenant", "1-64 characters of letters, digits and . _ : -")])
    return tenant_id


MAX_BINDING = 255


def validate_binding(value: str, field: str) -> str:
    value = value.strip()
    if len(value) > MAX_BINDING or any(not ch.isprintable() for ch in value):
        raise InvalidArgument([(field, f"at most {MAX_BINDING} printable characters")])
    return value


def validate_expiry(expires_at: dt.datetime | None, now: dt.datetime, field: str = "expire_time") -> dt.datetime | None:
    if expires_at is not None and expires_at <= now:
        raise InvalidArgument([(field, "must be in the future")])
    return expires_at


@dataclasses.dataclass(frozen=True)
class ApiKey:
    """An API key as listed (never its secret)."""

    tenant_id: str
    id: str
    name: str
    roles: list[str]
    created_at: dt.datetime
    revoked_at: dt.datetime | None
    expires_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    bound_cert_subject: str = ""
    bound_san: str = ""
