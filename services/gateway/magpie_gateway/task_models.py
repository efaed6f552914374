"""Request and response bodies of the smart-message send operations (``create_aim_send_task``,
``list_aim_send_tasks``, ``list_aim_send_details``) with the SDK's field names and types.

Fields marked "Magpie extension" are not in the SDK models; the SDK ignores them when it deserialises, a client
reading the raw JSON gets them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from magpie_gateway.sms_models import PageInfo


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class SmsChannel(_Body):
    channel_number: str | None = None
    sms_tpl_id: str | None = None
    sms_sign: str | None = None
    sms_app_name: str | None = None


class CreateResolveTaskParam(_Body):
    cust_flag: str | None = Field(None, description="the recipient's mobile number")
    dync_params: dict[str, Any] | None = Field(None, description="values of the card template's params")
    custom_url: str | None = None
    custom_short_code: str | None = None
    sms_params: list[Any] | None = Field(None, description="values of the SMS template variables except the link")


class AIMResolveTask(_Body):
    tpl_id: str | None = None
    resolve_times: int | None = None
    aim_code_type: str | None = Field(None, description="individual (the only supported value)")
    generation_type: str | None = Field(
        None, description="1 standard (default) | 2 custom short codes (domain and params[].custom_short_code)"
    )
    domain: str | None = None
    expiration_time: int | None = Field(None, description="link validity in days, 1-7 (default 7)")
    params: list[CreateResolveTaskParam] | None = None
    recipient_file_id: str | None = Field(
        None,
        description="Magpie extension: the recipients of an uploaded recipient file (POST /v1/magpie/recipient-files) "
        "instead of params",
    )


class CreateAimSendTaskRequestBody(_Body):
    task_name: str | None = Field(None, description="at most 30 characters")
    sms_channel: SmsChannel | None = None
    resolve_task: AIMResolveTask | None = None


class SmsChannelOut(_Out):
    channel_number: str | None = None
    sms_tpl_id: str | None = None
    sms_sign: str | None = None
    sms_app_name: str | None = None


class ResolveTaskOut(_Out):
    tpl_id: str | None = None
    resolve_times: int | None = None
    aim_code_type: str | None = None
    generation_type: str | None = None
    domain: str | None = None
    expiration_time: int | None = None
    params: list[dict[str, Any]] | None = None


class CreateAimSendTaskResponse(_Out):
    task_name: str
    sms_channel: SmsChannelOut
    resolve_task: ResolveTaskOut
    task_id: str
    task_state: str = Field(description="Success (accepted)")
    creation_time: str
    submission_count: int
    send_count: int
    resolve_count: int
    support_resolve_count: int
    failed_short_chains: list[dict[str, Any]]


class AIMSendTasksMode(_Out):
    task_name: str
    sms_channel: SmsChannelOut
    resolve_task: ResolveTaskOut
    task_id: str
    task_state: str = Field(description="Success (accepted, sending) | COMPLETED (every recipient final) | Failed")
    creation_time: str
    submission_count: int
    send_count: int
    resolve_count: int
    support_resolve_count: int
    failed_short_chains: list[dict[str, Any]]
    success_number: int
    magpie_summary: dict[str, Any] = Field(description="Magpie extension: number check and delivery counts")


class ListAimSendTasksResponse(_Out):
    aim_send_tasks: list[AIMSendTasksMode]
    page_info: PageInfo


class AIMSendDetail(_Out):
    msg_id: str | None = None
    task_id: str
    task_name: str | None = None
    tpl_id: str | None = None
    tpl_name: str | None = None
    cust_flag: str
    send_account: str | None = None
    send_status: str = Field(description="SENDING | DELIVERED | FAILED | TIMEOUT | SKIPPED | INVALID")
    send_time: str | None = None
    receive_time: str | None = None
    result_code: str | None = None


class ListAimSendDetailsResponse(_Out):
    send_details: list[AIMSendDetail]
    page_info: PageInfo
