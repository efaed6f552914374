"""Deciding whether a sub-user may perform an action, from the policies attached to it.

The rules of Huawei Cloud IAM:

1. The main account may do everything (the caller handles that before evaluating).
2. An explicit ``Deny`` in any attached policy wins over every ``Allow``.
3. Otherwise an ``Allow`` whose pattern matches the action allows it.
4. Otherwise the action is denied (default deny: a sub-user without policies can do nothing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from magpie_gateway.iam.policies import PolicyDocument


@dataclass(frozen=True, slots=True)
class NamedDocument:
    policy_id: str
    name: str
    document: PolicyDocument


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    policy_id: str | None = None  # the policy whose statement decided (None for the default deny)


def evaluate(action: str, policies: Iterable[NamedDocument]) -> Decision:
    allowed_by: NamedDocument | None = None
    for policy in policies:
        for statement in policy.document.statements:
            if not statement.matches(action):
                continue
            if statement.effect == "Deny":
                return Decision(False, f"{action} is denied by policy {policy.name!r}", policy.policy_id)
            if allowed_by is None:
                allowed_by = policy
    if allowed_by is not None:
        return Decision(True, f"{action} is allowed by policy {allowed_by.name!r}", allowed_by.policy_id)
    return Decision(False, f"{action} is not allowed by any policy attached to the user")
