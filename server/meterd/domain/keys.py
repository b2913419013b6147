"""API keys: format, hashing and roles. A key reads "mk_<id>_<secret>"; only its SHA-256 is stored."""

from __future__ import annotations

import dataclasses
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

    def may(self, role: str) -> bool:
        return "admin" in self.roles or role in self.roles


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
