"""Request and response bodies of the service-number (SA, ``/v1/aim-sa/...``) operations, with the field names,
types and nesting of the SDK models (``PubInfoRequestBody``, ``MenuItem``, ``PortalModel``, ``ListPortInfosResponse
ModelData``, ...). Request fields are all optional here: the endpoints check them (``sa_validation``) so that a
missing or wrong field gets a precise ``KM.00000400`` message."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


def _null_as_empty_object(value: Any) -> Any:
    return {} if value is None else value


def _null_as_empty_list(value: Any) -> Any:
    return [] if value is None else value


# Nested parts are not Optional (no ``anyOf`` in the schema, which keeps the OpenAPI document shallow): a missing or
# null part is an empty one, and the endpoints tell "missing" apart with ``model_fields_set``.
EmptyIfNull = BeforeValidator(_null_as_empty_object)
EmptyListIfNull = BeforeValidator(_null_as_empty_list)


class PageInfo(_Out):
    offset: int
    limit: int
    total: int


# --- requests: service number -----------------------------------------------------------------------------------
class PubInfoRequestBody(_Body):
    """SDK ``PubInfoRequestBody``."""

    logo_img: str | None = Field(None, description="resource_id of an uploaded PUB_LOGO image")
    pub_name: str | None = Field(None, description="1-15 characters")
    pub_abstract: str | None = Field(None, description="1-75 characters")
    pub_remark: str | None = Field(None, description="1-15 characters; must differ between pubs of the same name")
    auto_get_port: int | None = Field(None, description="signature authorisation: 0 off (default), 1 on")
    signs_for_auto_get_port: list[str] | None = Field(None, description="required when auto_get_port is 1")
    areas_for_auto_get_port: list[str] | None = Field(None, description="default 全国; no overlapping regions")
    industry: int | None = Field(None, description="1-11 (11 other, the default)")
    authorization_files: list[str] | None = Field(None, description="1-6 resource_ids of OTHER images, <= 4 MB in all")


class UpdatePubInfoRequestBody(PubInfoRequestBody):
    """SDK ``UpdatePubInfoRequestBody``: the given fields replace the current ones."""

    change_reason: str | None = Field(None, description="1-10 characters")


class ChangeReasonBody(_Body):
    """SDK ``FreezePubRequestBody`` / ``UnfreezePubRequestBody``."""

    change_reason: str | None = Field(None, description="1-10 characters")


# --- requests: menus ---------------------------------------------------------------------------------------------
class ExtMsg(_Body):
    open_in_browser: str | None = None
    web_title: str | None = None
    package_name: str | None = None
    app_id: str | None = None
    browser_floor_url: str | None = None
    depend_engine_ver: str | None = None
    third_service_name: str | None = None


class _MenuEntry(_Body):
    name: str | None = None
    action_type: str | None = Field(None, description="OPEN_SUBMENU | OPEN_URL | CALLING | OPEN_APP | OPEN_QUICK")
    content: str | None = None
    ext_msg: ExtMsg | None = None


class SubMenuItem(_MenuEntry):
    """An item of a submenu (SDK ``MenuItem`` one level down): it cannot open another submenu."""

    sub_menu_items: list[dict[str, Any]] | None = Field(None, description="must be empty")


class MenuItem(_MenuEntry):
    """SDK ``MenuItem`` (top level)."""

    sub_menu_items: list[SubMenuItem] | None = Field(None, description="1-5 items, only with OPEN_SUBMENU")


class Menus(_Body):
    """SDK ``Menus`` / ``MenusMode``."""

    menu_items: Annotated[list[MenuItem], EmptyListIfNull] = Field(
        default_factory=list, description="0-3 top-level menus (required)"
    )


class MenuInfoRequestBody(_Body):
    menu: Annotated[Menus, EmptyIfNull] = Field(default_factory=Menus)


class UpdateMenuRequestBody(_Body):
    menu: Annotated[Menus, EmptyIfNull] = Field(default_factory=Menus)
    change_reason: str | None = Field(None, description="1-10 characters")


# --- requests: homepage (portal) --------------------------------------------------------------------------------
class TelModel(_Body):
    tel: str | None = None
    usage: str | None = None


class FastappModel(_Body):
    """SDK ``CreatePubFastappModel`` / ``UpdatePortalFastappModel``."""

    name: str | None = None
    logo_img: str | None = None
    description: str | None = None
    deeplink: str | None = None
    depend_engine_version: str | None = None


class PortalInfoRequestBody(_Body):
    background_img: str | None = Field(None, description="resource_id of an uploaded BG_IMAGE image")
    summary: str | None = Field(None, description="1-75 characters")
    tels: list[TelModel] | None = Field(None, description="0-5 hotlines")
    fastapps: list[FastappModel] | None = Field(None, description="0-10 quick apps")
    hw_pubs: list[str] | None = Field(None, description="reserved (0-10)")


class UpdatePortalInfoRequestBody(PortalInfoRequestBody):
    change_reason: str | None = Field(None, description="1-10 characters")


class CreatePubInfoRequestBody(_Body):
    """SDK ``CreatePubInfoRequestBody``: all three parts are required."""

    pub_request_body: Annotated[PubInfoRequestBody, EmptyIfNull] = Field(default_factory=PubInfoRequestBody)
    portal_request_body: Annotated[PortalInfoRequestBody, EmptyIfNull] = Field(default_factory=PortalInfoRequestBody)
    menu_request_body: Annotated[MenuInfoRequestBody, EmptyIfNull] = Field(default_factory=MenuInfoRequestBody)


# --- requests: ports --------------------------------------------------------------------------------------------
class RegisterPortRequestBody(_Body):
    port: str | None = Field(None, description="digits; <= 21 (port_type 1 or 3) or exactly 5 (port_type 5)")
    port_type: int | None = Field(None, description="1 normal, 3 prefix, 5 suffix")
    sign: list[str] | None = Field(None, description="1-5 signatures of 2-18 characters")
    sign_check: int | None = Field(None, description="0 no check, 1 check the signature (required for 3 and 5)")
    authorization_files: list[str] | None = Field(None, description="1-5 'resource_id:resource_url', <= 4 MB in all")


class LockPortRequestBody(_Body):
    pub_id: str | None = None
    port: str | None = None
    province: str | None = Field(None, description="全国, provinces or cities, separated by commas; no overlaps")
    sign: list[str] | None = Field(None, description="a subset of the port's signatures")
    ext_port_id: str | None = Field(None, description="the port's id (list_port_infos type 0)")


class UnlockPortRequestBody(_Body):
    id: str | None = Field(None, description="the binding's id (list_port_infos type 1)")


# --- responses ----------------------------------------------------------------------------------------------------
class CreatePubInfoData(_Out):
    log_id: str
    pub_id: str | None = None
    menu_id: str | None = None
    portal_id: str | None = None
    pub_name: str | None = None


class CreatePubInfoModel(_Out):
    data: CreatePubInfoData


class CreatePubInfoResponse(_Out):
    data: CreatePubInfoModel


class UpdatePubInfoData(_Out):
    pub_update_log_id: str


class UpdatePubInfoModel(_Out):
    data: UpdatePubInfoData


class UpdatePubInfoResponse(_Out):
    data: UpdatePubInfoModel


class PubIdModel(_Out):
    pub_id: str


class FreezePubResponse(_Out):
    """Also ``UnfreezePubResponse``."""

    data: PubIdModel


class PubDetail(_Out):
    pub_id: str
    oper_time: str | None = None
    state: int
    online_time: str | None = None
    company_name: str | None = None
    pub_name: str
    logo_img: str | None = None
    logo_url: str | None = None
    authorization_files: dict[str, str] = Field(default_factory=dict)
    auto_get_port: int
    industry: int
    pub_abstract: str | None = None
    signs_for_auto_get_port: list[str] = Field(default_factory=list)
    company_id: str
    pub_remark: str | None = None
    approve_state: int
    areas_for_auto_get_port: list[str] = Field(default_factory=list)


class ListPubInfosModel(_Out):
    page_info: PageInfo
    data: list[PubDetail]


class ListPubInfosResponse(_Out):
    data: ListPubInfosModel


class MenusOut(_Out):
    menu_items: list[dict[str, Any]]


class MenusRsp(_Out):
    menu_id: str
    pub_id: str
    pub_name: str | None = None
    logo_img: str | None = None
    logo_url: str | None = None
    menu: MenusOut
    menu_state: int
    approve_state: int
    online_time: str | None = None
    oper_time: str | None = None
    company_id: str
    company_name: str | None = None


class ListMenusModel(_Out):
    data: list[MenusRsp]
    page_info: PageInfo


class ListMenusResponse(_Out):
    data: ListMenusModel


class UpdateMenuModel(_Out):
    menu_id: str
    log_id: str


class UpdateMenuResponse(_Out):
    data: UpdateMenuModel


class PushData(_Out):
    log_id: str
    message: str


class PushModel(_Out):
    data: PushData


class PushResponse(_Out):
    """``PushMenuInfoResponse`` and ``PushPortalInfoResponse``."""

    data: PushModel


class PortalModel(_Out):
    portal_id: str
    company_id: str
    company_name: str | None = None
    pub_id: str
    pub_name: str | None = None
    background_img: str | None = None
    background_img_url: str | None = None
    summary: str | None = None
    tels: str = Field(description="JSON list of {tel, usage}")
    fastapps: str = Field(description="JSON list of {name, logo_img, logo_img_url, description, deeplink, ...}")
    state: int
    approve_state: int
    online_time: str | None = None
    creator: str | None = None
    create_time: str | None = None
    change_reason: str | None = None


class ListPortalInfosModel(_Out):
    portals: list[PortalModel]
    page_info: PageInfo


class ListPortalInfosResponse(_Out):
    data: ListPortalInfosModel


class UpdatePortalInfoModel(_Out):
    portal: PortalModel


class UpdatePortalInfoResponse(_Out):
    data: UpdatePortalInfoModel


class RegisterResult(_Out):
    port: str
    port_type: int
    sign: list[str]


class RegisterPortModel(_Out):
    data: RegisterResult


class RegisterPortResponse(_Out):
    data: RegisterPortModel


class DeletePortData(_Out):
    port: str
    port_type: int


class DeletePortModel(_Out):
    data: DeletePortData


class DeletePortInfoResponse(_Out):
    data: DeletePortModel


class MessageModel(_Out):
    message: str


class MessageResponse(_Out):
    """``LockPortResponse`` and ``UnlockPortResponse``."""

    data: MessageModel


class PortSearchPubDetail(_Out):
    pub_name: str | None = None
    pub_reference: str | None = None


class PortInfo(_Out):
    id: str
    create_time: str | None = None
    pub_id: str | None = None
    port: str
    sign: list[str]
    authorization_files: dict[str, str] = Field(default_factory=dict)
    pub_name: str | None = None
    port_type: int
    sign_check: int
    province: str | None = None
    is_bind: int
    pub_list: list[PortSearchPubDetail] = Field(default_factory=list)


class ListPortInfosModel(_Out):
    page_info: PageInfo
    data: list[PortInfo]


class ListPortInfosResponse(_Out):
    data: ListPortInfosModel


class UploadMediaModel(_Out):
    resource_type: int
    resource_id: str
    resource_url: str


class UploadMediaResponse(_Out):
    data: UploadMediaModel
