"""Request and response bodies of the VMS (智能信息基础版) operations, with the SDK's field names and types
(``CreateVmsTemplateRequestBody``, ``ResourceInfo``, ``VmsTemplateStatus``, ``CreateVmsSendTaskRequestBody``,
``ContentParam``, ``IndividualParam``, ``VmsSendTask``, ``AddVmsCallBackRequestBody``, ``VmsCallBack``).

Request fields are typed loosely where the SDK itself is loose (``expiration_time`` of a template is a string of
days, ``index`` a string such as ``"1-2"``) and checked by the endpoints, so that a bad value gets a precise
``{error_code, error_msg}`` rather than a generic validation error.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from magpie_gateway.sms_models import PageInfo


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- templates -----------------------------------------------------------------------------------------------
class ResourceInfo(_Body):
    index: str | None = Field(None, description='"frame-element", e.g. "1-1", "1-2", "2-1"; all or none')
    type: str | None = Field(None, description="txt | jpg | jpeg | png | gif | mp3 | wav | mp4 | 3gp")
    name: str | None = None
    source: str | None = Field(None, description="txt | file (base64 content) | url")
    content: str | None = None


class CreateVmsTemplateRequestBody(_Body):
    expiration_time: str | int | None = Field(None, description="validity in days, 1-9999")
    tpl_name: str | None = None
    title: str | None = None
    reslist: list[ResourceInfo] | None = None
    remarks: str | None = None
    callbackurl: str | None = None
    is_draft: int | None = Field(None, description="1: save as a draft (not reviewed)")


class CreateVmsTemplateResponse(_Out):
    tplid: str


class StatusDetail(_Out):
    carrier: str
    status: int
    desc: str | None = None


class VarInfo(_Out):
    name: str
    type: str


class VmsTemplateStatusView(_Out):
    tpl_id: str
    audit_state: int
    audit_desc: str | None = None
    tpl_size: int
    valid_time: str | None = None
    status_detail: list[StatusDetail]
    preview_url: str | None = None
    tpl_name: str
    title: str
    tpl_sign: str | None = None
    create_time: str
    var_info: list[VarInfo]
    restags: str | None = None


class ListVmsTemplateStatusData(_Out):
    templates: list[VmsTemplateStatusView]
    page_info: PageInfo


class ListVmsTemplateStatusResponse(_Out):
    status: str
    message: str
    data: ListVmsTemplateStatusData


# --- send tasks ----------------------------------------------------------------------------------------------
class ContentParam(_Body):
    param_name: str | None = None
    content_type: str | None = None
    content_source: str | None = None
    content_detail: str | None = None


class IndividualParam(_Body):
    mobiles: list[str] | None = None
    dync_params: list[ContentParam] | None = None


class CreateVmsSendTaskRequestBody(_Body):
    task_name: str | None = None
    tpl_id: str | None = None
    expiration_time: int | None = Field(None, description="message validity in hours, 1-72 (default 24)")
    mobiles: list[str] | None = None
    dync_params: list[ContentParam] | None = None
    individual_params: list[IndividualParam] | None = None
    exdata: str | None = None


class CreateVmsTaskResponseMode(_Out):
    ret_code: str
    task_id: str
    desc: str


class CreateVmsSendTaskResponse(_Out):
    status: str
    message: str
    data: CreateVmsTaskResponseMode


class VmsSendTaskView(_Out):
    task_id: str
    task_name: str
    task_state: str
    tpl_id: str
    tpl_name: str | None = None
    operator: str | None = None
    create_time: str
    send_time: str | None = None
    total_count: int
    success_count: int
    failed_count: int
    timeout_count: int
    exdata: str | None = None


class ListVmsSendTasksData(_Out):
    aim_basic_send_tasks: list[VmsSendTaskView]
    page_info: PageInfo


class ListVmsSendTasksResponse(_Out):
    status: str
    message: str
    data: ListVmsSendTasksData


# --- callbacks -----------------------------------------------------------------------------------------------
class AddVmsCallBackRequestBody(_Body):
    url_type: int | None = Field(None, description="0: send status reports, 1: replies (MO)")
    callback_url: str | None = None
    remark: str | None = None


class AddVmsCallBackResponse(_Out):
    status: str
    message: str


class VmsCallBackView(_Out):
    url_type: int
    callback_url: str
    remark: str | None = None


class ListVmsCallbacksData(_Out):
    callbacks: list[VmsCallBackView]


class ListVmsCallbacksResponse(_Out):
    status: str
    message: str
    data: ListVmsCallbacksData
