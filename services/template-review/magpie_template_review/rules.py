"""The automatic rule set. Pure functions of a :class:`Submission`; no I/O.

Each rule returns :class:`Finding` objects. A finding rejects either the whole submission (``vendors`` is None:
every vendor, or the carrier review of an SMS subject) or only the vendors it names, so that e.g. OPPO can be
rejected for a button while HUAWEI approves. ``Reviewer.review`` runs the rules of the subject and turns the
findings into one verdict per vendor; the submission is approved when at least one vendor approves.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from magpie.v1 import template_pb2
from magpie_template_review.catalog import (
    ACTION_ALIASES,
    AIM_MAX_PARAMS,
    AIM_VENDORS,
    BUTTON_ACTIONS,
    CARRIER,
    DYNAMIC_ACTION,
    ECOMMERCE_COUPON_MAX_PARAMS,
    ECOMMERCE_COUPON_TYPES,
    GENERIC_SUBJECTS,
    HUAWEI,
    KM_SENSITIVE_WORDS,
    KM_SIGNATURE_EMPTY,
    KM_SIGNATURE_LENGTH,
    OPPO,
    OPPO_ACTIONS,
    PLATFORM,
    SIGNATURE_MAX_CHARS,
    SIGNATURE_MIN_CHARS,
    SMS_NOTIFICATION_TYPES,
    SMS_PROMOTION_TYPES,
    SMS_TEMPLATE_MAX_CHARS,
    Rule,
)
from magpie_template_review.normalize import normalize
from magpie_template_review.submission import Button, Submission
from magpie_template_review.words import SensitiveWords

MAX_WORDS_REPORTED = 10


@dataclass(frozen=True)
class Finding:
    """One rule that fired. ``vendors`` None rejects the whole submission; otherwise only those vendors."""

    rule_id: str
    message: str
    error_code: str = ""
    vendors: frozenset[str] | None = None

    def describe(self) -> str:
        code = f"{self.error_code} " if self.error_code else ""
        return f"{code}[{self.rule_id}] {self.message}"


@dataclass(frozen=True)
class VendorVerdict:
    vendor: str
    approved: bool
    reason: str = ""


@dataclass(frozen=True)
class AutoReview:
    findings: tuple[Finding, ...]
    verdicts: tuple[VendorVerdict, ...]

    @property
    def approved(self) -> bool:
        return any(v.approved for v in self.verdicts)

    @property
    def rule_ids(self) -> list[str]:
        return list(dict.fromkeys(f.rule_id for f in self.findings))

    @property
    def reason(self) -> str:
        return "; ".join(f.describe() for f in self.findings)


# --- buttons --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedAction:
    dynamic: bool
    action: str  # the KooMessage event type, "" for a dynamic button without one
    known: bool


def parse_action(raw: str) -> ParsedAction:
    """``OPEN_URL`` / ``open_url`` / ``DIAL`` (alias) / ``DYNAMIC`` / ``DYNAMIC:OPEN_URL``."""
    value = raw.strip().upper()
    dynamic = value == DYNAMIC_ACTION or value.startswith(DYNAMIC_ACTION + ":")
    if dynamic:
        value = value[len(DYNAMIC_ACTION) + 1 :].strip() if ":" in value else ""
    value = ACTION_ALIASES.get(value, value)
    known = value in BUTTON_ACTIONS or (dynamic and value == "")
    return ParsedAction(dynamic, value, known)


def _label(button: Button) -> str:
    return f"button {button.text!r} ({button.action or 'no action'})"


# --- AIM templates --------------------------------------------------------------------------------------------
def is_ecommerce_coupon(use_template_type: str) -> bool:
    return use_template_type.strip().upper() in ECOMMERCE_COUPON_TYPES


def aim_vendor_rules(sub: Submission) -> list[Finding]:
    vendors = sub.requested_vendors()
    if not vendors:
        return [Finding(Rule.AIM_NO_VENDORS, "no vendor selected: choose at least one of " + _vendor_list())]
    unknown = [v for v in vendors if v not in AIM_VENDORS]
    if not unknown:
        return []
    return [
        Finding(
            Rule.AIM_UNKNOWN_VENDOR,
            f"unsupported vendor {', '.join(unknown)}; supported: {_vendor_list()}",
            vendors=frozenset(unknown),
        )
    ]


def aim_param_rules(sub: Submission) -> list[Finding]:
    coupon = is_ecommerce_coupon(sub.use_template_type)
    limit = ECOMMERCE_COUPON_MAX_PARAMS if coupon else AIM_MAX_PARAMS
    if sub.param_count < 0:
        return [Finding(Rule.AIM_PARAM_LIMIT, f"invalid parameter count {sub.param_count}")]
    count = max(sub.param_count, len(sub.param_names))
    if count > limit:
        kind = "an e-commerce coupon (电商领券) template" if coupon else "a template"
        return [Finding(Rule.AIM_PARAM_LIMIT, f"{count} parameters; {kind} allows at most {limit}")]
    return []


def aim_button_rules(sub: Submission) -> list[Finding]:
    vendors = sub.requested_vendors()
    findings: list[Finding] = []
    parsed = [(b, parse_action(b.action)) for b in sub.buttons]
    unknown = [b for b, p in parsed if not p.known]
    if unknown:
        findings.append(
            Finding(
                Rule.AIM_UNKNOWN_BUTTON_ACTION,
                "unknown button event type: " + ", ".join(_label(b) for b in unknown),
            )
        )
    if OPPO in vendors:
        # Dynamic buttons are left to the dynamic-button rule, which already rejects OPPO.
        banned = [b for b, p in parsed if p.known and not p.dynamic and p.action not in OPPO_ACTIONS]
        if banned:
            findings.append(
                Finding(
                    Rule.AIM_OPPO_BUTTON_ACTION,
                    "with OPPO selected, buttons may only use OPEN_BROWSER, OPEN_QUICK or OPEN_APP: "
                    + ", ".join(_label(b) for b in banned),
                    vendors=frozenset({OPPO}),
                )
            )
    dynamic = [b for b, p in parsed if p.dynamic]
    others = frozenset(v for v in vendors if v != HUAWEI)
    if dynamic and others:
        findings.append(
            Finding(
                Rule.AIM_DYNAMIC_BUTTON_HUAWEI_ONLY,
                "dynamic buttons (动态按钮) are supported by HUAWEI only: " + ", ".join(_label(b) for b in dynamic),
                vendors=others,
            )
        )
    return findings


def aim_layout_rules(sub: Submission) -> list[Finding]:
    others = frozenset(v for v in sub.requested_vendors() if v != HUAWEI)
    if is_ecommerce_coupon(sub.use_template_type) and others:
        return [
            Finding(
                Rule.AIM_ECOMMERCE_COUPON_HUAWEI_ONLY,
                "e-commerce coupon (电商领券) templates render on HUAWEI handsets only",
                vendors=others,
            )
        ]
    return []


# --- SMS templates --------------------------------------------------------------------------------------------
_VARIABLE = re.compile(r"\$\{[1-9][0-9]*\}")
_QUOTE = "\"'“”‘’「」『』"
_OPT_OUT_WORD = "(?:退订|退定|取关|拒收)"
# Matched on the normalised content (NFKC, case-folded, no whitespace). Accepted forms, with 1–4 letters or
# digits as the reply code and optional quotes around it:
#   回T退订, 回TD退订, 回复T退订, 回复TD退订, 回N退订, 回0退订, 回T取关, 回复R拒收, 回复退订
#   退订回T, 退订回TD, 退订请回复TD, 拒收请回复R, 拒收回R, 取关回T
#   English: reply STOP (to opt out / unsubscribe)
_OPT_OUT = re.compile(
    rf"回复[{_QUOTE}]?[a-z0-9]{{0,4}}[{_QUOTE}]?{_OPT_OUT_WORD}"
    rf"|回[{_QUOTE}]?[a-z0-9]{{1,4}}[{_QUOTE}]?{_OPT_OUT_WORD}"
    rf"|{_OPT_OUT_WORD}请?回复?[{_QUOTE}]?[a-z0-9]{{1,4}}"
    rf"|reply[{_QUOTE}]?(?:stop|unsubscribe|td)"
)


def sms_content(sub: Submission) -> str:
    """The template body: the first text (any further texts are only scanned for sensitive words)."""
    return sub.texts[0] if sub.texts else ""


def malformed_variables(content: str) -> list[str]:
    """Every ``${`` that does not open a ``${N}`` variable with N a positive integer, as a short excerpt."""
    bad: list[str] = []
    for match in re.finditer(r"\$\{", content):
        if not _VARIABLE.match(content, match.start()):
            start = match.start()
            end = content.find("}", start, start + 16)
            bad.append(content[start : end + 1] if end != -1 else content[start : start + 12])
    return bad


def has_opt_out(content: str) -> bool:
    return _OPT_OUT.search(normalize(content)) is not None


def sms_template_rules(sub: Submission) -> list[Finding]:
    content = sms_content(sub)
    if not content.strip():
        return [Finding(Rule.SMS_TEMPLATE_EMPTY, "the template content is empty")]
    findings: list[Finding] = []
    if len(content) > SMS_TEMPLATE_MAX_CHARS:
        findings.append(
            Finding(Rule.SMS_TEMPLATE_TOO_LONG, f"{len(content)} characters; at most {SMS_TEMPLATE_MAX_CHARS}")
        )
    bad = malformed_variables(content)
    if bad:
        findings.append(
            Finding(
                Rule.SMS_TEMPLATE_VARIABLE,
                "variables must be written ${N} with N a positive integer: " + ", ".join(bad[:5]),
            )
        )
    kind = sub.use_template_type.strip().upper()
    if kind in SMS_PROMOTION_TYPES:
        if not has_opt_out(content):
            findings.append(
                Finding(
                    Rule.SMS_PROMOTION_OPT_OUT,
                    "a promotion template must tell how to opt out, e.g. 回T退订, 回TD退订 or 拒收请回复R",
                )
            )
    elif kind not in SMS_NOTIFICATION_TYPES:
        findings.append(
            Finding(
                Rule.SMS_TEMPLATE_TYPE,
                f"unknown template type {sub.use_template_type!r}: use PROMOTION_TYPE or NOTIFY_TYPE",
            )
        )
    return findings


# --- SMS signatures -------------------------------------------------------------------------------------------
_SIGNATURE_CHAR = re.compile(r"[0-9A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_BRACKETS = "【】[]〔〕〖〗"


def signature_text(sub: Submission) -> str:
    """The signature itself: ``name``, or the first text when the name is empty."""
    name = sub.name.strip()
    return name if name else (sub.texts[0].strip() if sub.texts else "")


def signature_rules(sub: Submission) -> list[Finding]:
    signature = signature_text(sub)
    if not signature:
        return [Finding(Rule.SMS_SIGNATURE_EMPTY, "the signature is empty", KM_SIGNATURE_EMPTY)]
    findings: list[Finding] = []
    if any(ch in _BRACKETS for ch in signature):
        findings.append(
            Finding(Rule.SMS_SIGNATURE_BRACKETS, "write the signature without brackets: the system adds 【】")
        )
    if not SIGNATURE_MIN_CHARS <= len(signature) <= SIGNATURE_MAX_CHARS:
        findings.append(
            Finding(
                Rule.SMS_SIGNATURE_LENGTH,
                f"{len(signature)} characters; a signature has {SIGNATURE_MIN_CHARS}–{SIGNATURE_MAX_CHARS}",
                KM_SIGNATURE_LENGTH,
            )
        )
    invalid = sorted({ch for ch in signature if ch not in _BRACKETS and not _SIGNATURE_CHAR.fullmatch(ch)})
    if invalid:
        findings.append(
            Finding(
                Rule.SMS_SIGNATURE_CHARSET,
                "only Chinese characters, letters and digits are allowed; found " + " ".join(repr(c) for c in invalid),
            )
        )
    return findings


# --- sensitive words ------------------------------------------------------------------------------------------
def reviewed_texts(sub: Submission) -> list[str]:
    return [sub.name, *sub.texts, *(b.text for b in sub.buttons)]


def sensitive_word_rules(sub: Submission, words: SensitiveWords) -> list[Finding]:
    hits: dict[str, str] = {}
    for text in reviewed_texts(sub):
        for hit in words.find(text):
            hits.setdefault(hit.term, hit.category)
    if not hits:
        return []
    listed = ", ".join(f"{term} ({category})" for term, category in list(hits.items())[:MAX_WORDS_REPORTED])
    more = f" and {len(hits) - MAX_WORDS_REPORTED} more" if len(hits) > MAX_WORDS_REPORTED else ""
    return [Finding(Rule.SENSITIVE_WORD, f"sensitive words: {listed}{more}", KM_SENSITIVE_WORDS)]


# --- the reviewer ---------------------------------------------------------------------------------------------
def verdicts(vendors: Sequence[str], findings: Sequence[Finding]) -> tuple[VendorVerdict, ...]:
    result = []
    for vendor in vendors:
        against = [f for f in findings if f.vendors is None or vendor in f.vendors]
        result.append(VendorVerdict(vendor, not against, "; ".join(f.describe() for f in against)))
    return tuple(result)


class Reviewer:
    """Runs the rules of a submission's subject; built once with the compiled word list."""

    def __init__(self, words: SensitiveWords) -> None:
        self.words = words

    def review(self, sub: Submission) -> AutoReview:
        if sub.subject == template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE:
            findings = [*aim_vendor_rules(sub), *aim_param_rules(sub), *aim_button_rules(sub), *aim_layout_rules(sub)]
            vendors: tuple[str, ...] = sub.requested_vendors()
        elif sub.subject == template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE:
            findings = sms_template_rules(sub)
            vendors = (CARRIER,)
        elif sub.subject == template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE:
            findings = signature_rules(sub)
            vendors = (CARRIER,)
        elif sub.subject in GENERIC_SUBJECTS:
            findings = []
            vendors = tuple(v.strip().upper() for v in sub.vendors if v.strip()) or (PLATFORM,)
        else:
            raise ValueError(f"unsupported review subject {sub.subject}")
        findings.extend(sensitive_word_rules(sub, self.words))
        return AutoReview(tuple(findings), verdicts(vendors, findings))


def _vendor_list() -> str:
    return ", ".join(sorted(AIM_VENDORS))
