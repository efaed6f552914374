"""Request and response bodies of the AIM template and callback operations, with the SDK's field names and
types (``CreateAimPersonalTemplateRequestBody``, ``AIMTemplate``, ``AddCallbackRequestBody``, ...)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from magpie_gateway.sms_models import PageInfo


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# --- AIM templates -------------------------------------------------------------------------------------------
class AimPersonalTemplateContentAction(_Body):
    target: str | None = None
    content: str | None = None
    package_name: str | None = None
    floor_url: str | None = None
    floor_type: int | None = None
    subject: str | None = None
    body: str | None = None
    description: str | None = None
    begin_time: str | None = None
    end_time: str | None = None
    address: str | None = None
    longitude: str | None = None
    latitude: str | None = None
    text_button: str | None = None
    mode: int | None = None


class AimPersonalTemplateContent(_Body):
    type: str = Field(description="text | image | video | button | followPub")
    content: str | None = None
    content_child: str | None = None
    src_type: int | None = None
    src: str | None = None
    cover: str | None = None
    is_text_title: str | None = None
    action_type: str | None = Field(None, description="one of the 12 KooMessage event types, e.g. OPEN_BROWSER")
    position_number: int | None = None
    visible: int | None = None
    currency_display: int | None = None
    oppo_background: str | None = None
    vivo_background: str | None = None
    ratio: str | None = None
    action: AimPersonalTemplateContentAction | None = None
    button_type: str | None = Field(None, description="static | dynamic (EcommerceCouponVertical)")


class AimPersonalTemplatePage(_Body):
    page_order: int | None = None
    contents: list[AimPersonalTemplateContent] = Field(default_factory=list)


class AimPersonalTemplateParam(_Body):
    type: int | None = None
    name: str
    example: str | None = None


class AimPersonalTemplateFactory(_Body):
    factory_type: str = Field(description="HUAWEI | HONOR | XIAOMI | OPPO | VIVO | MEIZU | SAMSUNG")
    state: int | None = Field(None, description="1 submit (default), 0 do not submit")


class CreateAimPersonalTemplateRequestBody(_Body):
    card_id: str | None = None
    tpl_name: str | None = None
    scene: str | None = None
    use_id: int | None = None
    sub_type: int | None = None
    sms_example: str | None = None
    sms_signs: list[str] | None = None
    sms_template: str | None = None
    pages: list[AimPersonalTemplatePage] | None = None
    params: list[AimPersonalTemplateParam] | None = None
    factorys: list[AimPersonalTemplateFactory] | None = None


class CreateAimPersonalTemplateResponseMode(_Out):
    tpl_id: str


class CreateAimPersonalTemplateResponse(_Out):
    status: str
    message: str
    data: CreateAimPersonalTemplateResponseMode


class AIMTemplateParams(_Out):
    type: str | None = None
    name: str | None = None
    has_length: bool | None = None
    fix_length: int | None = None
    length_restrict: bool | None = None
    min_length: int | None = None
    max_length: int | None = None


class FactoryInfo(_Out):
    factory_type: str
    state: int = Field(description="1 active (approved by this vendor), 0 not")
    version: str | None = None
    tpl_id: str | None = None


class AIMTemplate(_Out):
    tpl_id: str
    tpl_name: str | None = None
    scene: str | None = None
    tpl_state: int = Field(description="1 enabled (approved by at least one vendor), 0 not")
    disable_desc: str | None = None
    disable_time: str | None = None
    audit_state: int = Field(description="1 under review, 2 approved, 3 rejected")
    audit_desc: str | None = None
    description: str | None = None
    creation_time: str | None = None
    update_time: str | None = None
    pages: str | None = Field(None, description="the template's pages as a JSON string")
    params: list[AIMTemplateParams] | None = None
    factory_info: list[FactoryInfo] | None = None
    match_type: int | None = None
    card_id: str | None = None
    sub_type: int | None = None
    preview_url: str | None = None


class ListAimTemplatesResponse(_Out):
    templates: list[AIMTemplate]
    page_info: PageInfo


# --- callbacks -----------------------------------------------------------------------------------------------
class AddCallbackRequestBody(_Body):
    callback_url: str | None = Field(None, description="http(s), at most 1000 characters, public address")
    url_type: int | None = Field(None, description="0 single send receipts, 1 template status, 2 batch receipts")


class Callback(_Out):
    callback_url: str
    id: str
    url_type: int


class AddCallBackResponse(_Out):
    status: str
    message: str
    data: Callback


class ListAimCallbacksResponse(_Out):
    status: str
    message: str
    data: list[Callback]
