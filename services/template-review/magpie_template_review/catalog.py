"""The vocabulary the gateway and the reviewer share: vendors, button actions, template types, rule ids.

Values follow the public KooMessage API (``huaweicloudsdkkoomessage``): vendor ids are ``factory_type`` values,
button actions are ``action_type`` values, AIM template types are ``card_id`` layouts and SMS template types are
``template_type`` values. Every comparison is case-insensitive (values are upper-cased first).
"""

from __future__ import annotations

from magpie.v1 import template_pb2

# --- vendors (AIM) --------------------------------------------------------------------------------------------
HUAWEI = "HUAWEI"
OPPO = "OPPO"
AIM_VENDORS: frozenset[str] = frozenset({"HUAWEI", "HONOR", "XIAOMI", "OPPO", "VIVO", "MEIZU", "SAMSUNG"})

# SMS templates and signatures are reviewed once, for the carriers: their single VendorReview uses this name
# (name it in MAGPIE_REVIEW_MANUAL_VENDORS to hold SMS reviews for a human).
CARRIER = "CARRIER"
PLATFORM = "PLATFORM"  # the platform's own review (filings, domains, service numbers, ...)

# --- button actions (AIM) -------------------------------------------------------------------------------------
# The twelve KooMessage event types.
BUTTON_ACTIONS: frozenset[str] = frozenset(
    {
        "OPEN_URL",
        "OPEN_QUICK",
        "OPEN_APP",
        "DIAL_PHONE",
        "OPEN_SMS",
        "OPEN_EMAIL",
        "OPEN_SCHEDULE",
        "OPEN_MAP",
        "OPEN_BROWSER",
        "OPEN_POPUP",
        "COPY_PARAMETER",
        "VIEW_PIC",
    }
)
# Short spellings accepted for compatibility (the proto comment says DIAL).
ACTION_ALIASES: dict[str, str] = {"DIAL": "DIAL_PHONE"}
# With OPPO among the vendors, buttons may only use these [seed 000「OPEN_QUICK」].
OPPO_ACTIONS: frozenset[str] = frozenset({"OPEN_BROWSER", "OPEN_QUICK", "OPEN_APP"})
# A dynamic button (动态按钮, Huawei only) is sent as action "DYNAMIC", or "DYNAMIC:<event type>"
# (e.g. "DYNAMIC:OPEN_URL") when the gateway knows the event type behind it.
DYNAMIC_ACTION = "DYNAMIC"

# --- AIM template types ---------------------------------------------------------------------------------------
AIM_MAX_PARAMS = 20
ECOMMERCE_COUPON_MAX_PARAMS = 40
# 电商领券 (e-commerce coupon): 40 parameters, Huawei handsets only [seed 001「电商领券」].
ECOMMERCE_COUPON_TYPES: frozenset[str] = frozenset(
    {"ECOMMERCE_COUPON", "ECOMMERCECOUPONVERTICAL", "ECOMMERCECOUPONHORIZONTAL"}
)

# --- SMS templates --------------------------------------------------------------------------------------------
SMS_TEMPLATE_MAX_CHARS = 20_000
SMS_PROMOTION_TYPES: frozenset[str] = frozenset({"PROMOTION", "PROMOTION_TYPE", "MARKETING"})
SMS_NOTIFICATION_TYPES: frozenset[str] = frozenset({"NOTIFICATION", "NOTIFY", "NOTIFY_TYPE", "NOTIFICATION_TYPE"})

# --- SMS signatures -------------------------------------------------------------------------------------------
SIGNATURE_MIN_CHARS = 2
SIGNATURE_MAX_CHARS = 16

# --- error codes (KooMessage) ---------------------------------------------------------------------------------
KM_SENSITIVE_WORDS = "KM.90016801"
KM_SIGNATURE_EMPTY = "KM.00001075"
KM_SIGNATURE_LENGTH = "KM.00001076"


# --- rule ids -------------------------------------------------------------------------------------------------
class Rule:
    """Rule ids, reported in TemplateReviewed.rule_ids and counted in the rule-hit metric."""

    SENSITIVE_WORD = "SENSITIVE_WORD"
    AIM_NO_VENDORS = "AIM_NO_VENDORS"
    AIM_UNKNOWN_VENDOR = "AIM_UNKNOWN_VENDOR"
    AIM_PARAM_LIMIT = "AIM_PARAM_LIMIT"
    AIM_UNKNOWN_BUTTON_ACTION = "AIM_UNKNOWN_BUTTON_ACTION"
    AIM_OPPO_BUTTON_ACTION = "AIM_OPPO_BUTTON_ACTION"
    AIM_DYNAMIC_BUTTON_HUAWEI_ONLY = "AIM_DYNAMIC_BUTTON_HUAWEI_ONLY"
    AIM_ECOMMERCE_COUPON_HUAWEI_ONLY = "AIM_ECOMMERCE_COUPON_HUAWEI_ONLY"
    SMS_TEMPLATE_EMPTY = "SMS_TEMPLATE_EMPTY"
    SMS_TEMPLATE_TOO_LONG = "SMS_TEMPLATE_TOO_LONG"
    SMS_TEMPLATE_VARIABLE = "SMS_TEMPLATE_VARIABLE"
    SMS_TEMPLATE_TYPE = "SMS_TEMPLATE_TYPE"
    SMS_PROMOTION_OPT_OUT = "SMS_PROMOTION_OPT_OUT"
    SMS_SIGNATURE_EMPTY = "SMS_SIGNATURE_EMPTY"
    SMS_SIGNATURE_LENGTH = "SMS_SIGNATURE_LENGTH"
    SMS_SIGNATURE_BRACKETS = "SMS_SIGNATURE_BRACKETS"
    SMS_SIGNATURE_CHARSET = "SMS_SIGNATURE_CHARSET"
    MANUAL_REVIEW = "MANUAL_REVIEW"


SUBJECT_NAMES: dict[int, str] = {
    template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE: "aim_template",
    template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE: "sms_template",
    template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE: "sms_signature",
    template_pb2.REVIEW_SUBJECT_VMS_TEMPLATE: "vms_template",
    template_pb2.REVIEW_SUBJECT_SA_PUB: "sa_pub",
    template_pb2.REVIEW_SUBJECT_SA_MENU: "sa_menu",
    template_pb2.REVIEW_SUBJECT_SA_PORTAL: "sa_portal",
    template_pb2.REVIEW_SUBJECT_SA_PORT: "sa_port",
    template_pb2.REVIEW_SUBJECT_FILING: "filing",
    template_pb2.REVIEW_SUBJECT_DOMAIN: "domain",
    template_pb2.REVIEW_SUBJECT_JUMP_LINK: "jump_link",
}

# Subjects reviewed by the generic content rules only (sensitive words over every text); their "vendors" are the
# reviewers named in the submission (VMS: the carriers), or the platform's own review when none is named.
GENERIC_SUBJECTS: frozenset[int] = frozenset(
    set(SUBJECT_NAMES)
    - {
        template_pb2.REVIEW_SUBJECT_AIM_TEMPLATE,
        template_pb2.REVIEW_SUBJECT_SMS_TEMPLATE,
        template_pb2.REVIEW_SUBJECT_SMS_SIGNATURE,
    }
)
