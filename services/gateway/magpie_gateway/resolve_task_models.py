"""Request and response bodies of the resolution-task operations (``create_resolve_task``, ``list_resolve_tasks``,
``list_aim_resolve_details``) with the SDK's field names and types. Fields marked "Magpie extension" are not in the
SDK models (the SDK ignores them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from magpie_gateway.sms_models import PageInfo


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class CreateShortChainParam(_Body):
    cust_flag: Any = Field(None, description="the recipient's identifier (a mobile number or any id), at most 64 chars")
    dync_params: Any = Field(None, description="values of the card template's params (individual links only)")
    custom_url: Any = Field(None, description="landing page of a group link, http(s), at most 256 characters")
    custom_short_code: Any = Field(None, description="3-10 letters and digits (generation_type 2)")


class CreateResolveTaskRequestBody(_Body):
    tpl_id: Any = Field(None, description="AIM template, approved by at least one vendor")
    sms_signs: Any = Field(None, description="1-5 SMS signatures (without 【】) the SMS will be sent with")
    resolving_times: Any = Field(None, description="group: maximum counted resolutions (>= 2); individual: 1")
    aim_code_type: Any = Field(None, description="individual (default) | group")
    generation_type: Any = Field(None, description="1 standard codes (default) | 2 custom short codes")
    domain: Any = Field(None, description="short-link domain name (letters and digits); required with type 2")
    expiration_time: Any = Field(None, description="validity in days: individual 1-7, group 1-180 (default 7)")
    params: Any = Field(None, description="the links: at most 100 (a group task: exactly one)")
    task_name: Any = Field(None, description="Magpie extension: a name for the task, at most 30 characters")


class CreateResolveTaskParamMode(_Out):
    cust_flag: str | None = None
    cust_id: str | None = None
    dync_params: dict[str, str] | None = None
    custom_url: str | None = None
    aim_url: str | None = None
    aim_code: str | None = None
    ext_data: str | None = None
    result_code: str | None = None
    error_message: str | None = None
    generate_date: str | None = None
    expire_date: str | None = None
    resolved_date: str | None = None
    resolved_times: int | None = None
    custom_short_code: str | None = None


class CreateResolveTaskResponse(_Out):
    task_id: str
    tpl_id: str
    sms_signs: list[str]
    resolving_times: int
    resolved_times: int
    aim_code_type: str
    domain: str | None = None
    expiration_time: int
    params: list[CreateResolveTaskParamMode]
    task_state: str = Field(description="Magpie extension: generating | success | partial | failed")


class ListResolveTaskResultParam(_Out):
    cust_flag: str | None = None
    cust_id: str | None = None
    dync_params: dict[str, str] | None = None
    custom_url: str | None = None
    aim_url: str | None = None
    aim_code: str | None = None
    ext_data: str | None = None
    result_code: str | None = None
    error_message: str | None = None
    generate_date: str | None = None
    expire_date: str | None = None
    resolved_date: str | None = None
    resolved_times: int | None = None


class ListResolveTaskResult(_Out):
    task_id: str
    task_name: str | None = None
    tpl_id: str
    sms_signs: list[str]
    resolving_times: int
    resolved_times: int
    aim_code_type: str
    domain: str | None = None
    expiration_time: int
    params: list[ListResolveTaskResultParam] = Field(description="the task's first link (see the resolve details)")


class ListResolveTasksResponse(_Out):
    resolve_tasks: list[ListResolveTaskResult]
    page_info: PageInfo


class AIMResolveDetail(_Out):
    resolve_id: str
    task_id: str
    task_name: str | None = None
    send_account: str | None = None
    tpl_id: str | None = None
    tpl_name: str | None = None
    cust_flag: str | None = None
    aim_url: str | None = None
    result_code: str | None = None
    generate_date: str | None = None
    expire_date: str | None = None
    resolved_time: str | None = None
    resolved_status: str = Field(description="success | fail | unresolved")


class ListAimResolveDetailsResponse(_Out):
    resolve_details: list[AIMResolveDetail]
    page_info: PageInfo
