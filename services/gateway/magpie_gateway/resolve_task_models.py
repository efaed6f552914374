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


# --- Magpie operations on a resolution task (/v1/magpie/resolve-tasks/{task_id}/...) ---------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddResolvingTimesRequest(_Strict):
    """Exactly one of the two: an increment, or the new total (idempotent: repeating it changes nothing)."""

    add_resolving_times: int | None = Field(
        None, ge=1, description="resolutions to add to the group link's budget", examples=[500]
    )
    resolving_times: int | None = Field(
        None, ge=1, description="the new budget (at least the current one; equal = no change)", examples=[1500]
    )


class ExtendValidityRequest(_Strict):
    expiration_time: int = Field(
        ge=1,
        description="the new validity in days from the task's creation (individual at most 7, group at most 180); "
        "at least the current one (equal = no change)",
        examples=[30],
    )


class ResolveTaskLink(_Out):
    index: int = Field(description="position of the link in the task (0-based)", examples=[0])
    cust_flag: str | None = Field(None, examples=["13800138000"])
    aim_url: str | None = Field(None, examples=["https://s.magpie-shop.com/aB3dE5fG7h"])
    aim_code: str | None = Field(None, examples=["aB3dE5fG7h"])
    custom_short_code: str | None = Field(None, examples=["Spring01"])
    result_code: str | None = Field(
        None, description='"0" minted, else why it failed (e.g. KM.90016482 custom code taken)', examples=["0"]
    )
    error_message: str | None = None
    max_resolutions: int = Field(description="the link's resolution budget (individual: 1)", examples=[1500])
    resolved_times: int = Field(examples=[12])
    generate_date: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    expire_date: str | None = Field(None, examples=["2026-12-22T08:00:00Z"])


class ResolveTaskState(_Out):
    task_id: str = Field(examples=["RT01JD3Q8W5R2K7M9N4P6T8V0X2Y"])
    task_name: str | None = Field(None, examples=["双十一群发"])
    tpl_id: str = Field(examples=["100000001"])
    aim_code_type: str = Field(description="individual | group", examples=["group"])
    task_state: str = Field(description="generating | success | partial | failed", examples=["success"])
    resolving_times: int = Field(description="resolution budget of each link", examples=[1500])
    resolved_times: int = Field(examples=[12])
    expiration_time: int = Field(description="validity in days from creation", examples=[30])
    creation_time: str | None = Field(None, examples=["2026-11-22T08:00:00Z"])
    expire_date: str | None = Field(None, examples=["2026-12-22T08:00:00Z"])
    link_count: int = Field(examples=[1])
    minted_count: int = Field(examples=[1])
    params: list[ResolveTaskLink] = Field(description="every link of the task, by index")


class RegenerateResolveTaskResponse(ResolveTaskState):
    regenerated_count: int = Field(description="links this request minted (0: nothing had failed)", examples=[2])
