"""Client settings shared by the client tests."""

from __future__ import annotations

from meter import FailurePolicy

# Tests that assert Meter's answers must get them: a check slowed down by a loaded CI machine must not
# turn into a failure-policy decision (the short default deadline and the allowance are tested apart).
STRICT = {"policy": FailurePolicy.closed(), "check_timeout": 10.0, "record_timeout": 10.0}
