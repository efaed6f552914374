"""Request and response bodies of the SMS operations (apps, signatures and their files, SMS templates, plain SMS
sends), with the field names and types of the SDK models (``huaweicloudsdkkoomessage.v1.model``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class PageInfo(_Out):
    offset: int
    limit: int
    total: int


# --- apps ----------------------------------------------------------------------------------------------------
class MsgAppRequest(_Body):
    """SDK ``MsgAppRequest`` (``create_sms_app``)."""

    app_name: str | None = Field(None, description="letters, digits and underscore; unique per tenant, any case")
    up_link_addr: str | None = Field(None, description="uplink (MO) callback URL, http(s), public address")


class CreateSmsAppResponse(_Out):
    app_name: str
    app_id: str


class SmsApp(_Out):
    app_id: str
    app_name: str
    status: str = Field(description="NORMAL")
    region: str
    create_time: str | None = None
    up_link_addr: str | None = None


class ListAimMsgAppResponse(_Out):
    result: list[SmsApp]
    page_info: PageInfo


class UpdateAimMsgAppResponse(_Out):
    app_name: str
    app_id: str


class EmptyResponse(_Out):
    """The SDK's empty responses (``DeleteAimMsgSignatureResponse``, ``DeleteAimMsgTemplateResponse``): ``{}``."""


# --- signatures ----------------------------------------------------------------------------------------------
class SignatureRequest(_Body):
    """SDK ``SignatureRequest`` (``add_aim_msg_signature``)."""

    signature_name: str | None = Field(None, description="2-16 Chinese characters, letters or digits, no 【】")
    signature_type: str | None = Field(None, description="PROMOTION_TYPE | NOTIFY_TYPE")
    app_id: str | None = None
    apply_desc: str | None = None
    file_id: str | None = None
    signature_source: int | None = Field(None, ge=0, le=5)
    is_involved_third: str | None = Field(None, description="yes | no")
    power_attorney_file_id: str | None = None
    source_title_content: str | None = None


class AddAimMsgSignatureResponse(_Out):
    signature_id: str
    signature_name: str


class SmsSignatureInfo(_Out):
    signature_name: str
    signature_id: str
    signature_type: str | None = None
    app_name: str | None = None
    app_id: str | None = None
    apply_desc: str | None = None
    channel_num: str | None = None
    file_id: str | None = None
    status: str = Field(description="PENDING_REVIEW | APPROVED | REJECTED")
    signature_source: int | None = None
    is_involved_third: str | None = None
    power_attorney_file_id: str | None = None
    urge_status: str | None = None
    urge_time: str | None = None
    urge_desc: str | None = None
    review_desc: str | None = None
    source_title_content: str | None = None
    create_time: str | None = None


class ListAimMsgSignatureResponse(_Out):
    result: list[SmsSignatureInfo]
    page_info: PageInfo


class UpdateAimMsgSignatureResponse(_Out):
    signature_id: str
    signature_name: str


class UploadAimMsgSignatureFileResponse(_Out):
    file_id: str


class ShowAimMsgSignatureFileInfoResponse(_Out):
    file_id: str
    file_name: str


# --- SMS templates -------------------------------------------------------------------------------------------
class VariableAttributes(_Body):
    variable_index: int | None = None
    variable_type: str | None = Field(
        None, description="PHONE | NEWTEXT (the link) | CHARDIGIT | DATETIME | MONEY | TEXT"
    )
    variable_desc: str | None = None


class MsgTemplateRequest(_Body):
    """SDK ``MsgTemplateRequest`` (``create_aim_msg_template``)."""

    app_id: str | None = Field(None, description="defaults to the signature's app")
    signature_id: str | None = None
    template_content: str | None = Field(None, description="up to 20,000 characters with ${N} variables")
    template_desc: str | None = None
    template_name: str | None = None
    template_type: str | None = Field(None, description="PROMOTION_TYPE | NOTIFY_TYPE; defaults to the signature's")
    universal_template: str | None = Field(None, description="0 (1, universal templates, is not supported)")
    variable_attributes: list[VariableAttributes] | None = None


class CreateAimMsgTemplateResponse(_Out):
    template_id: str
    template_name: str | None = None


class SmsTemplateInfo(_Out):
    template_id: str
    template_name: str | None = None
    create_time: str | None = None
    template_type: str | None = None
    app_id: str | None = None
    app_name: str | None = None
    signature_id: str | None = None
    template_content: str | None = None
    template_desc: str | None = None
    has_variable: str | None = Field(None, description="true | false")
    flow_status: str = Field(description="PENDING_REVIEW | APPROVED | REJECTED")
    status: str = Field(description="PENDING_REVIEW | APPROVED | REJECTED")
    universal_template: int | None = None
    urge_status: str | None = None
    urge_time: str | None = None
    urge_desc: str | None = None
    review_desc: str | None = None


class ListAimMsgTemplateResponse(_Out):
    result: list[SmsTemplateInfo]
    page_info: PageInfo


class UpdateAimMsgTemplateResponse(_Out):
    template_id: str
    template_name: str | None = None


class VariableAttributesResponse(_Out):
    id: int = Field(description="position of the variable in fill order (1 = filled by template_params[0])")
    variable_index: int = Field(description="N of ${N}")
    variable_length: int = Field(description="maximum characters of a value")
    variable_type: str | None = Field(None, description="PHONE | NEWTEXT | CHARDIGIT | DATETIME | MONEY | TEXT")
    variable_desc: str | None = None


class ShowAimMsgTemplateVariableResponse(_Out):
    results: list[VariableAttributesResponse]
    total: int


# --- plain SMS sends -----------------------------------------------------------------------------------------
class SmsTaskReq(_Body):
    """SDK ``SmsTaskReq`` (``send_aim_batch_messages``)."""

    channel_num: str | None = Field(None, description="sender number; defaults to the template signature's")
    template_id: str | None = None
    signature: str | None = Field(None, description="optional; when given it must be the template's signature")
    task_name: str | None = Field(None, description="at most 30 characters; default Task_<time>")
    to: list[str] | None = Field(None, description="1-500 mainland mobile numbers (+86 optional), each <= 21 chars")
    template_params: list[str] | None = Field(None, description="one value per template variable, ascending N")
    extend: str | None = Field(None, description="returned as is in the receipts (their aim_url); no { }")


class MsgContent(_Body):
    """SDK ``MsgContent``: one template and its numbers in ``send_aim_batch_different_messages``."""

    to: list[str] | None = None
    template_id: str | None = None
    template_params: list[str] | None = None


class SmsMultiTemplateTaskRequestBody(_Body):
    """SDK ``SmsMultiTemplateTaskRequestBody`` (``send_aim_batch_different_messages``)."""

    sms_content: list[MsgContent] | None = Field(None, description="1-100 entries")
    channel_num: str | None = None
    extend: str | None = None
    task_name: str | None = None


class SmsDetailResponse(_Out):
    to: str
    channel_num: str | None = None
    msg_id: str | None = Field(None, description="null when the number was not sent (send_status not 000000)")
    send_status: str = Field(description="000000 accepted | E200041 duplicate number | E000503 invalid number")
    create_time: str
    segments: int | None = Field(None, description="Magpie extension: billable SMS segments of the message")


class SendAimBatchMessagesResponse(_Out):
    task_id: str
    status: str = Field(description="Success: handed to the carrier pipeline (delivery comes in the receipts)")
    result: list[SmsDetailResponse]


class SendAimBatchDifferentMessagesResponse(SendAimBatchMessagesResponse):
    pass
