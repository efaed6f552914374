"""Policy documents (validation, wildcard matching), the evaluation rules, the system policies and passwords."""

from __future__ import annotations

from typing import Any

import pytest

from magpie_gateway.iam import passwords
from magpie_gateway.iam.actions import ACTIONS, KNOWN_ACTIONS, Kind, Product
from magpie_gateway.iam.evaluation import NamedDocument, evaluate
from magpie_gateway.iam.policies import (
    MAX_DOCUMENT_CHARS,
    SYSTEM_POLICIES,
    PolicyError,
    action_matches,
    parse_document,
    system_policy,
)

SEND = "KooMessage:devSendTask:create"
MINT = "KooMessage:devResolveTask:create"
DELETE_PORT = "KooMessage:saPort:delete"


def doc(*statements: tuple[str, list[str]]) -> dict[str, Any]:
    return {"Version": "1.1", "Statement": [{"Effect": e, "Action": a} for e, a in statements]}


def allowed(action: str, *documents: dict[str, Any]) -> bool:
    named = [NamedDocument(f"P{i}", f"policy{i}", parse_document(d)) for i, d in enumerate(documents)]
    return evaluate(action, named).allowed


# --- validation ------------------------------------------------------------------------------------------------


def test_the_documented_examples_parse_and_round_trip() -> None:
    example = {"Version": "1.1", "Statement": [{"Action": ["KooMessage:*:*"], "Effect": "Allow"}]}
    assert parse_document(example).as_json() == {
        "Version": "1.1",
        "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:*"]}],
    }
    deny = '{"Version": "1.1", "Statement": [{"Effect": "Deny", "Action": ["kooMessage:devSendTask:create"]}]}'
    assert parse_document(deny).statements[0].effect == "Deny"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not valid JSON"),
        ([], "must be a JSON object"),
        ({"Statement": []}, 'Version must be "1.1"'),
        ({"Version": "1.0", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:*"]}]}, "Version"),
        ({"Version": "1.1"}, "Statement must be a non-empty array"),
        ({"Version": "1.1", "Statement": []}, "Statement must be a non-empty array"),
        ({"Version": "1.1", "Statement": {}}, "Statement must be a non-empty array"),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:*"]}], "Id": 1}, "unknown keys"),
        ({"Version": "1.1", "Statement": ["Allow"]}, "Statement[0] must be an object"),
        ({"Version": "1.1", "Statement": [{"Effect": "allow", "Action": ["KooMessage:*:*"]}]}, "Effect must be"),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow"}]}, "Action must be a non-empty array"),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": "KooMessage:*:*"}]}, "non-empty array"),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": []}]}, "non-empty array"),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": [3]}]}, "Action[0] must be a string"),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*"]}]}, "service:resource:verb"),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage::list"]}]}, "not empty"),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:[a]:list"]}]}, "segment"),
        (
            {"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:devSendTasks:create"]}]},
            "no action",
        ),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["ecs:*:*"]}]}, "matches no action"),
        (
            {"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:*"], "Resource": ["*"]}]},
            "Resource is not supported",
        ),
        (
            {"Version": "1.1", "Statement": [{"Effect": "Deny", "Action": ["KooMessage:*:*"], "Condition": {}}]},
            "Condition is not supported",
        ),
        (
            {"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:*"], "Sid": "x"}]},
            "unknown key",
        ),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:*"]}] * 51}, "more than 50"),
        ({"Version": "1.1", "Statement": [{"Effect": "Allow", "Action": ["KooMessage:*:*"] * 101}]}, "more than 100"),
    ],
)
def test_invalid_documents_are_refused_with_a_precise_message(raw: Any, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_document(raw)
    assert message in str(caught.value)


def test_oversized_documents_are_refused() -> None:
    statements = [{"Effect": "Allow", "Action": sorted(KNOWN_ACTIONS)} for _ in range(4)]
    with pytest.raises(PolicyError, match=f"more than {MAX_DOCUMENT_CHARS}"):
        parse_document({"Version": "1.1", "Statement": statements})


def test_repeated_patterns_are_kept_once() -> None:
    parsed = parse_document(doc(("Allow", ["KooMessage:*:list", "KooMessage:*:list"])))
    assert parsed.statements[0].actions == ("KooMessage:*:list",)


# --- matching --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("KooMessage:*:*", SEND, True),
        ("kooMessage:devSendTask:create", SEND, True),
        ("KOOMESSAGE:DEVSENDTASK:CREATE", SEND, True),
        ("*:*:*", "iam:users:createUser", True),
        ("KooMessage:*:*", "iam:users:createUser", False),
        ("KooMessage:dev*:*", SEND, True),
        ("KooMessage:dev*:*", "KooMessage:saPort:delete", False),
        ("KooMessage:*:list", "KooMessage:saPort:list", True),
        ("KooMessage:*:list", SEND, False),
        ("KooMessage:*Task:*", MINT, True),
        ("KooMessage:saPor?:delete", DELETE_PORT, True),
        ("KooMessage:saPo?:delete", DELETE_PORT, False),
        ("KooMessage:*", SEND, False),  # segments are never crossed
        ("KooMessage:devSendTask:create:x", SEND, False),
    ],
)
def test_wildcards_match_segment_by_segment(pattern: str, action: str, expected: bool) -> None:
    assert action_matches(pattern, action) is expected


# --- evaluation ------------------------------------------------------------------------------------------------


def test_default_deny_allow_and_deny_wins() -> None:
    assert not allowed(SEND)
    assert allowed(SEND, doc(("Allow", ["KooMessage:*:*"])))
    assert not allowed(SEND, doc(("Allow", ["KooMessage:*:*"])), doc(("Deny", [SEND])))
    assert not allowed(SEND, doc(("Deny", ["kooMessage:devSendTask:*"])), doc(("Allow", [SEND])))
    assert not allowed(SEND, doc(("Allow", [SEND]), ("Deny", ["KooMessage:dev*:create"])))
    assert allowed("KooMessage:devSendTask:list", doc(("Allow", ["KooMessage:*:*"]), ("Deny", [SEND])))


def test_the_decision_names_the_policy() -> None:
    documents = [
        NamedDocument("P1", "all", parse_document(doc(("Allow", ["KooMessage:*:*"])))),
        NamedDocument("P2", "no-send", parse_document(doc(("Deny", [SEND])))),
    ]
    decision = evaluate(SEND, documents)
    assert not decision.allowed and decision.policy_id == "P2" and "'no-send'" in decision.reason
    decision = evaluate("KooMessage:devSendTask:list", documents)
    assert decision.allowed and decision.policy_id == "P1"
    assert "not allowed by any policy" in evaluate(SEND, []).reason


# --- system policies -------------------------------------------------------------------------------------------


def system(name: str, action: str) -> bool:
    policy = system_policy(name)
    assert policy is not None, name
    return evaluate(action, [NamedDocument(policy.id, policy.name, policy.document)]).allowed


def test_sixteen_system_policies_with_huawei_names() -> None:
    names = {p.name for p in SYSTEM_POLICIES.values()}
    assert len(names) == 16
    for prefix in ("KooMessage", "KooMessage AIM", "KooMessage Basic Edition", "KooMessage SA"):
        for level in ("FullAccess", "ReadOnlyAccess", "CommonOperations", "Development"):
            assert f"{prefix} {level}" in names
    assert SYSTEM_POLICIES["KooMessageFullAccess"].document.as_json()["Statement"][0]["Action"] == ["KooMessage:*:*"]
    assert system_policy("koomessage sa readonlyaccess") is SYSTEM_POLICIES["KooMessageSAReadOnlyAccess"]


def test_read_only_users_cannot_mint_links_send_or_delete_ports() -> None:
    for name in ("KooMessage ReadOnlyAccess", "KooMessage AIM ReadOnlyAccess"):
        assert system(name, "KooMessage:devSendTask:list")
        assert system(name, "KooMessage:aimMsgTemplate:list")
        for action in (SEND, MINT, "KooMessage:devMobileCapability:check", "KooMessage:aimMsgApp:create"):
            assert not system(name, action), (name, action)
    assert system("KooMessage ReadOnlyAccess", "KooMessage:saPort:list")
    assert not system("KooMessage ReadOnlyAccess", DELETE_PORT)
    assert system("KooMessage SA ReadOnlyAccess", "KooMessage:saPort:list")
    assert not system("KooMessage SA ReadOnlyAccess", DELETE_PORT)
    assert not system("KooMessage Basic Edition ReadOnlyAccess", "KooMessage:vmsSendTask:create")
    assert system("KooMessage Basic Edition ReadOnlyAccess", "KooMessage:vmsSendTask:list")


def test_levels_follow_the_kinds_of_the_actions() -> None:
    levels = {
        "FullAccess": set(Kind),
        "CommonOperations": {Kind.READ, Kind.DEVELOP, Kind.OPERATE},
        "Development": {Kind.READ, Kind.DEVELOP},
        "ReadOnlyAccess": {Kind.READ},
    }
    products = {
        "KooMessage": {Product.AIM, Product.VMS, Product.SA, Product.ACCOUNT},
        "KooMessage AIM": {Product.AIM},
        "KooMessage Basic Edition": {Product.VMS},
        "KooMessage SA": {Product.SA},
    }
    for prefix, covered in products.items():
        for level, kinds in levels.items():
            for entry in ACTIONS.values():
                expected = entry.product in covered and entry.kind in kinds
                assert system(f"{prefix} {level}", entry.action) is expected, (prefix, level, entry)


def test_the_huawei_matrix_for_service_numbers() -> None:
    # Huawei's "常用操作与系统策略的关系": unbinding, deleting ports and freezing are FullAccess only.
    for action in ("KooMessage:saPort:disassociate", DELETE_PORT, "KooMessage:saPub:freeze"):
        assert system("KooMessage FullAccess", action) and system("KooMessage SA FullAccess", action)
        assert not system("KooMessage CommonOperations", action)
        assert not system("KooMessage SA CommonOperations", action)
    for action in ("KooMessage:saPort:create", "KooMessage:saPort:associate", "KooMessage:saPub:create"):
        assert system("KooMessage SA CommonOperations", action) and not system("KooMessage SA ReadOnlyAccess", action)


def test_development_sends_but_does_not_configure() -> None:
    assert system("KooMessage Development", SEND) and system("KooMessage Development", MINT)
    assert system("KooMessage Basic Edition Development", "KooMessage:vmsSendTask:create")
    for action in (
        "KooMessage:aimMsgTemplate:create",
        "KooMessage:devTemplate:create",
        "KooMessage:devCallback:create",
    ):
        assert not system("KooMessage Development", action)
    assert not system("KooMessage Development", "KooMessage:devTemplate:delete")


def test_no_system_policy_grants_iam_or_crosses_products() -> None:
    iam_actions = [e.action for e in ACTIONS.values() if e.product is Product.IAM]
    for policy in SYSTEM_POLICIES.values():
        named = [NamedDocument(policy.id, policy.name, policy.document)]
        assert not any(evaluate(a, named).allowed for a in iam_actions), policy.name
    assert not system("KooMessage SA FullAccess", SEND)
    assert not system("KooMessage AIM FullAccess", "KooMessage:vmsSendTask:create")
    assert not system("KooMessage Basic Edition FullAccess", DELETE_PORT)


# --- passwords -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("Sh0rt!", "8-64 characters"),
        ("x" * 65 + "A1", "8-64 characters"),
        ("alllowercase", "at least two"),
        ("12345678901", "at least two"),
        ("bob.smith1", "user name"),
        ("1htims.bob", "user name"),
        ("Tab\there123", "control characters"),
    ],
)
def test_password_rules(password: str, message: str) -> None:
    with pytest.raises(passwords.WeakPassword, match=message):
        passwords.check_rules(password, "Bob.Smith1")


async def test_password_hashes_verify_and_differ() -> None:
    passwords.check_rules("Correct-Horse-7", "bob")
    first = await passwords.hash_password("Correct-Horse-7")
    second = await passwords.hash_password("Correct-Horse-7")
    assert first != second and first.startswith("scrypt$16384$8$1$")
    assert "Correct-Horse-7" not in first
    assert await passwords.verify_password("Correct-Horse-7", first)
    assert not await passwords.verify_password("correct-horse-7", first)
    assert not await passwords.verify_password("Correct-Horse-7", None)
    assert not await passwords.verify_password("x", "garbage")
    assert not await passwords.verify_password("x", "bcrypt$1$2$3$4$5")
