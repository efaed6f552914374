"""Request and response bodies of the AIM template, material, template report and callback operations, with the
SDK's field names and types (``CreateAimPersonalTemplateRequestBody``, ``AIMTemplate``, ``Material``,
``AIMTemplateReport``, ``AddCallbackRequestBody``, ...)."""

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


class UpdatePersonalTemplateStateDataRequest(_Body):
    tpl_state: int | None = Field(None, description="0 disable, 1 enable (only an approved template)")


class NullDataResponse(_Out):
    """``{status, message, data: null}``: the answer of the AIM operations that return no data."""

    status: str
    message: str
    data: None = None


# --- AIM template materials ----------------------------------------------------------------------------------
class UploadAimTemplateMaterialRequestBody(_Body):
    resource_type: str | None = Field(None, description="image | video | thumbnail")
    material_id: str | None = Field(None, description="thumbnail: the material_id of its video")
    file_type: str | None = Field(None, description="url | stream")
    file_url: str | None = Field(None, description="file_type=url: http(s) URL ending with the file's extension")
    file_stream: str | None = Field(None, description="file_type=stream: data:<mime>;base64,<content>")
    image_rate: str | None = Field(None, description="oneToOne | sixteenToNine | threeToOne | ... (image: required)")
    file_name: str | None = Field(None, description="file_type=stream: required")
    description: str | None = None


class UploadAimTemplateMaterialResponseMode(_Out):
    material_id: str
    aim_resource_id: str


class UploadAimTemplateMaterialResponse(_Out):
    status: str
    message: str
    data: UploadAimTemplateMaterialResponseMode


class Thumbnail(_Out):
    id: str
    created_at: str | None = None
    is_primary: int | None = None
    resource_type: str | None = None
    file_name: str | None = None
    aim_resource_id: str | None = None
    obs_object_key: str | None = None
    obs_file_url: str | None = None
    image_rate: str | None = None
    is_auto_gen: int | None = Field(None, description="0 generated by the platform, 1 uploaded")
    description: str | None = None
    size: int | None = None


class Material(_Out):
    id: str
    created_at: str | None = None
    resource_type: str | None = None
    file_name: str | None = None
    aim_resource_id: str | None = None
    obs_object_key: str | None = None
    obs_file_url: str | None = None
    image_rate: str | None = None
    description: str | None = None
    thumbnail: Thumbnail | None = Field(None, description="a video's primary thumbnail")


class ListAimTemplateMaterialsResponseMode(_Out):
    page_info: PageInfo
    results: list[Material]


class ListAimTemplateMaterialsResponse(_Out):
    status: str
    message: str
    data: ListAimTemplateMaterialsResponseMode


class DeleteTemplateMaterialRequestBody(_Body):
    material_ids: list[str] | None = None


class SetPrimaryVideoThumbnailRequestBody(_Body):
    aim_resource_id: str | None = Field(None, description="the video's aim_resource_id")
    thumbnail_id: str | None = Field(None, description="the thumbnail's id (its material_id)")


class ListThumbnail(_Out):
    id: str
    created_at: str | None = None
    is_primary: int | None = None
    file_name: str | None = None
    aim_resource_id: str | None = None
    obs_object_key: str | None = None
    image_rate: str | None = None
    is_auto_gen: int | None = None
    description: str | None = None
    obs_bucket_name: str | None = None
    domain_id: str | None = None
    size: int | None = None
    obs_file_url: str | None = None


class ShowTemplateVideoThumbnailResponse(_Out):
    status: str
    message: str
    data: list[ListThumbnail]


# --- AIM template reports ------------------------------------------------------------------------------------
class ListAimTemplateReportsRequestBody(_Body):
    tpl_ids: list[str] | None = Field(None, description="1 to 100 AIM template ids")
    begin_time: str | None = None
    end_time: str | None = None
    offset: int | None = None
    limit: int | None = None
    factory_type: list[str] | None = Field(None, description="vendors (huawei, honor, vivo, ...); none = all")


class AIMTemplateReport(_Out):
    tpl_id: str
    start_time: str
    end_time: str
    resolving_times: int
    expose_uv: int
    expose_pv: int
    click_uv: int
    click_pv: int


class ListAimTemplateReportsResponse(_Out):
    template_reports: list[AIMTemplateReport]
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
