from __future__ import annotations

import pytest

from meterd.domain.errors import InvalidArgument, Unauthenticated
from meterd.domain.keys import Principal, check_format, hash_key, new_key, validate_roles


def test_new_keys_are_unique_well_formed_and_hash_stably():
    keys = {new_key()[1] for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        check_format(key)
        assert hash_key(key) == hash_key(key) and len(hash_key(key)) == 32


@pytest.mark.parametrize(
    "bad", ["", "mk_", "sk_abcdefghijkl_" + "A" * 32, "mk_ABCDEFGHIJKL_" + "A" * 32, "mk_abc_short"]
)
def test_malformed_keys_are_unauthenticated(bad):
    with pytest.raises(Unauthenticated):
        check_format(bad)


def test_roles_validated_and_deduplicated():
    assert validate_roles(["read", "check", "read"]) == ["check", "read"]
    with pytest.raises(InvalidArgument, match="unknown role"):
        validate_roles(["owner"])
    with pytest.raises(InvalidArgument, match="at least one role"):
        validate_roles([])


def test_admin_may_do_everything_others_only_their_role():
    assert Principal("t", "k", frozenset({"admin"})).may("record")
    assert Principal("t", "k", frozenset({"read"})).may("read")
    assert not Principal("t", "k", frozenset({"read"})).may("record")
