"""Policy documents: validation, action patterns, and the system policies.

A policy document has the shape of Huawei Cloud IAM fine-grained policies::

    {"Version": "1.1",
     "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:*"]},
                   {"Effect": "Deny", "Action": ["KooMessage:devSendTask:create"]}]}

Validation (``parse_document``; every failure is a ``PolicyError`` with a message naming the offending place):

- ``Version`` must be ``"1.1"``; ``Statement`` a non-empty array (at most ``MAX_STATEMENTS``) of objects with
  exactly the keys ``Effect`` (``"Allow"`` or ``"Deny"``) and ``Action`` (a non-empty array of at most
  ``MAX_ACTIONS_PER_STATEMENT`` strings). ``Resource`` and ``Condition`` are refused rather than ignored: Magpie
  has no resource-level or conditional authorization, and silently dropping them would grant more than written.
- An action pattern is ``service:resource:verb``: three non-empty segments of letters, digits, ``*`` and ``?``.
  ``*`` matches any run of characters and ``?`` one character, inside one segment (``KooMessage:*:list`` matches
  every list action, ``KooMessage:dev*:*`` every smart-message action). Matching is case-insensitive.
- A pattern that matches no action Magpie knows is refused (it is almost always a typo, e.g. ``devSendTasks``).
- The serialized document is at most ``MAX_DOCUMENT_CHARS`` characters (Huawei's limit for custom policies).

System policies (read-only, ids without spaces, names as on Huawei Cloud) are generated from the action table:

=======================  ======================================================================================
level                    allows (kinds from ``magpie_gateway.iam.actions``)
=======================  ======================================================================================
FullAccess               every action of the product (the whole-service one is ``KooMessage:*:*``)
CommonOperations         read + develop + operate: everything except delete, unbind (port disassociate), freeze
Development              read + develop: queries, sending, minting links, capability checks (SA: menu/homepage
                         drafts and media)
ReadOnlyAccess           read: queries only (cannot mint links, send, delete ports ...)
=======================  ======================================================================================

for the products ``KooMessage`` (the whole service: AIM + VMS + SA + account features), ``KooMessage AIM``
(smart messages with their SMS apps, signatures, templates), ``KooMessage Basic Edition`` (video SMS) and
``KooMessage SA`` (service numbers). Huawei Cloud has no "SA Development" and no "AIM" policies; Magpie adds them
so that every product has the four levels. No system policy allows ``iam:*`` actions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from magpie_gateway.iam.actions import KNOWN_ACTIONS, Kind, Product, actions_of

POLICY_VERSION = "1.1"
MAX_STATEMENTS = 50
MAX_ACTIONS_PER_STATEMENT = 100
MAX_DOCUMENT_CHARS = 6144
_SEGMENT = re.compile(r"[A-Za-z0-9*?]+")
_STATEMENT_KEYS = frozenset({"Effect", "Action"})
_UNSUPPORTED_KEYS = {"Resource": "resource-level", "Condition": "conditional", "NotAction": "NotAction"}

Effect = Literal["Allow", "Deny"]


class PolicyError(ValueError):
    """The policy document is not acceptable; ``str(exc)`` says why."""


@dataclass(frozen=True, slots=True)
class Statement:
    effect: Effect
    actions: tuple[str, ...]

    def matches(self, action: str) -> bool:
        return any(action_matches(pattern, action) for pattern in self.actions)


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    statements: tuple[Statement, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "Version": POLICY_VERSION,
            "Statement": [{"Effect": s.effect, "Action": list(s.actions)} for s in self.statements],
        }


def _split(value: str) -> list[str] | None:
    parts = value.split(":")
    return parts if len(parts) == 3 else None


def action_matches(pattern: str, action: str) -> bool:
    """Segment-wise, case-insensitive wildcard match of ``pattern`` against a concrete ``action``."""
    pattern_parts = _split(pattern.lower())
    action_parts = _split(action.lower())
    if pattern_parts is None or action_parts is None:
        return False
    return all(fnmatchcase(a, p) for p, a in zip(pattern_parts, action_parts, strict=True))


def check_pattern(pattern: Any, where: str) -> str:
    if not isinstance(pattern, str):
        raise PolicyError(f"{where} must be a string")
    parts = _split(pattern)
    if parts is None:
        raise PolicyError(f"{where} {pattern!r} must look like service:resource:verb (e.g. KooMessage:*:*)")
    for part in parts:
        if not _SEGMENT.fullmatch(part):
            raise PolicyError(f"{where} {pattern!r}: each segment is letters, digits, * or ? and not empty")
    if not any(action_matches(pattern, action) for action in KNOWN_ACTIONS):
        raise PolicyError(f"{where} {pattern!r} matches no action (see GET /v1/magpie/iam/actions)")
    return pattern


def _statement(raw: Any, where: str) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be an object")
    for key in raw:
        if key in _UNSUPPORTED_KEYS:
            raise PolicyError(f"{where}.{key} is not supported: Magpie has no {_UNSUPPORTED_KEYS[key]} authorization")
        if key not in _STATEMENT_KEYS:
            raise PolicyError(f"{where} has an unknown key {key!r} (allowed: Effect, Action)")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f'{where}.Effect must be "Allow" or "Deny"')
    actions = raw.get("Action")
    if not isinstance(actions, list) or not actions:
        raise PolicyError(f"{where}.Action must be a non-empty array of action names")
    if len(actions) > MAX_ACTIONS_PER_STATEMENT:
        raise PolicyError(f"{where}.Action has more than {MAX_ACTIONS_PER_STATEMENT} entries")
    checked = tuple(check_pattern(a, f"{where}.Action[{i}]") for i, a in enumerate(actions))
    return Statement(effect, tuple(dict.fromkeys(checked)))


def parse_document(raw: Any) -> PolicyDocument:
    """Validate a policy document (a parsed JSON value, or a JSON string) and return it normalized."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise PolicyError(f"policy is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PolicyError("policy must be a JSON object with Version and Statement")
    unknown = sorted(set(raw) - {"Version", "Statement"})
    if unknown:
        raise PolicyError(f"policy has unknown keys {unknown} (allowed: Version, Statement)")
    if raw.get("Version") != POLICY_VERSION:
        raise PolicyError(f'policy Version must be "{POLICY_VERSION}"')
    statements = raw.get("Statement")
    if not isinstance(statements, list) or not statements:
        raise PolicyError("policy Statement must be a non-empty array")
    if len(statements) > MAX_STATEMENTS:
        raise PolicyError(f"policy has more than {MAX_STATEMENTS} statements")
    document = PolicyDocument(tuple(_statement(s, f"Statement[{i}]") for i, s in enumerate(statements)))
    size = len(json.dumps(document.as_json(), ensure_ascii=False, separators=(",", ":")))
    if size > MAX_DOCUMENT_CHARS:
        raise PolicyError(f"policy has {size} characters, more than {MAX_DOCUMENT_CHARS}")
    return document


# --- system policies --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SystemPolicy:
    id: str
    name: str
    description: str
    document: PolicyDocument


_LEVELS: tuple[tuple[str, frozenset[Kind], str], ...] = (
    ("FullAccess", frozenset(Kind), "all permissions"),
    ("CommonOperations", frozenset({Kind.READ, Kind.DEVELOP, Kind.OPERATE}), "common operations (no delete)"),
    ("Development", frozenset({Kind.READ, Kind.DEVELOP}), "development: queries, sending, minting links"),
    ("ReadOnlyAccess", frozenset({Kind.READ}), "read-only"),
)
_PRODUCTS: tuple[tuple[str, frozenset[Product], str], ...] = (
    ("KooMessage", frozenset({Product.AIM, Product.VMS, Product.SA, Product.ACCOUNT}), "KooMessage (whole service)"),
    ("KooMessage AIM", frozenset({Product.AIM}), "smart messages (AIM)"),
    ("KooMessage Basic Edition", frozenset({Product.VMS}), "video SMS (Basic Edition)"),
    ("KooMessage SA", frozenset({Product.SA}), "service numbers (SA)"),
)


def _system_policies() -> dict[str, SystemPolicy]:
    policies: dict[str, SystemPolicy] = {}
    for prefix, products, product_text in _PRODUCTS:
        for level, kinds, level_text in _LEVELS:
            name = f"{prefix} {level}"
            if prefix == "KooMessage" and level == "FullAccess":
                actions = ["KooMessage:*:*"]
            else:
                actions = actions_of(products, kinds)
            document = PolicyDocument((Statement("Allow", tuple(actions)),))
            policy = SystemPolicy(name.replace(" ", ""), name, f"{product_text}: {level_text}", document)
            policies[policy.id] = policy
    return policies


SYSTEM_POLICIES: dict[str, SystemPolicy] = _system_policies()
"""system policy id (e.g. ``KooMessageReadOnlyAccess``, ``KooMessageSAFullAccess``) -> policy"""


def system_policy(policy_id_or_name: str) -> SystemPolicy | None:
    """A system policy by id or by name (``KooMessage SA FullAccess``), case-insensitively."""
    key = policy_id_or_name.replace(" ", "").lower()
    return next((p for p in SYSTEM_POLICIES.values() if p.id.lower() == key), None)
