"""The IAM action of every gateway operation, keyed by the route's ``summary`` (the SDK operation name).

An action is ``<service>:<resource>:<verb>``. KooMessage operations use the service ``KooMessage``; where Huawei
Cloud publishes the action of an API (KooMessage API reference, "权限和授权项": ``kooMessage:devTemplate:list``,
``kooMessage:devSendTask:create``, ``kooMessage:aimMsgApp:list``, ``kooMessage:aimMsgSignature:create`` ...) Magpie
uses exactly that resource and verb, so a custom policy written for Huawei Cloud works unchanged; the other
operations follow the same scheme (``dev*`` = smart messages, ``aimMsg*`` = SMS apps/signatures/templates, ``vms*`` =
video SMS, ``sa*`` = service numbers). Service names match case-insensitively (``kooMessage`` = ``KooMessage``).

Operations that manage IAM itself (sub-users, their access keys, policies) use the service ``iam`` with Huawei
IAM's action names (``iam:users:createUser`` ...). They are deliberately outside ``KooMessage:*:*``: a sub-user
holding ``KooMessage FullAccess`` must not be able to grant itself more rights. The main account may delegate IAM
administration with a custom policy allowing ``iam:*:*``.

Every action has a ``product`` (which system policies cover it) and a ``kind`` (which access levels include it):

- ``read``: queries (``list``/``get``/``check`` of state); in every level.
- ``develop``: using the product through the API without changing its configuration (sending, minting links,
  capability checks; for service numbers: editing menu/homepage drafts and uploading media); in Development,
  CommonOperations and FullAccess.
- ``operate``: creating and changing configuration (apps, signatures, templates, callbacks, ports, publishing for
  review); in CommonOperations and FullAccess.
- ``destroy``: destructive or costly operations (deleting, unbinding, freezing, buying packages); FullAccess only.

``PUBLIC_OPERATIONS`` need authentication but no action (obtaining, validating and revoking one's own token).
``ROOT_ONLY_OPERATIONS`` (changing the main account's password) are denied to every sub-user. Any other route whose
summary is not in ``ACTIONS`` is denied to sub-users too (fail closed); the main account may call every operation.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Product(StrEnum):
    AIM = "aim"  # smart messages (智能信息) and the SMS apps, signatures and templates they need
    VMS = "vms"  # video SMS (智能信息基础版, "Basic Edition")
    SA = "sa"  # service numbers (智能信息服务号)
    ACCOUNT = "account"  # account-wide console features (filings, packages, exports)
    IAM = "iam"  # users, access keys, policies (never in a system policy)


class Kind(StrEnum):
    READ = "read"
    DEVELOP = "develop"
    OPERATE = "operate"
    DESTROY = "destroy"


@dataclass(frozen=True, slots=True)
class OperationAction:
    operation: str  # the route's summary
    action: str
    product: Product
    kind: Kind
    description: str


KOOMESSAGE = "KooMessage"
IAM = "iam"

R, DEV, OP, X = Kind.READ, Kind.DEVELOP, Kind.OPERATE, Kind.DESTROY
AIM, VMS, SA, ACCOUNT, IAMP = Product.AIM, Product.VMS, Product.SA, Product.ACCOUNT, Product.IAM

_ROWS: tuple[tuple[str, str, Product, Kind, str], ...] = (
    # --- smart messages (AIM): templates and materials -----------------------------------------------------
    ("list_aim_templates", "KooMessage:devTemplate:list", AIM, R, "query smart-message templates"),
    ("create_aim_personal_template", "KooMessage:devTemplate:create", AIM, OP, "create a personal template"),
    ("update_personal_template_state", "KooMessage:devTemplate:update", AIM, OP, "enable or disable a template"),
    ("delete_aim_personal_template", "KooMessage:devTemplate:delete", AIM, X, "delete a personal template"),
    ("list_aim_template_reports", "KooMessage:devTemplateReport:list", AIM, R, "query template reports"),
    ("list_aim_template_materials", "KooMessage:devTemplateMaterial:list", AIM, R, "query template materials"),
    ("show_template_video_thumbnail", "KooMessage:devTemplateMaterial:list", AIM, R, "query video thumbnails"),
    ("upload_aim_template_material", "KooMessage:devTemplateMaterial:create", AIM, OP, "upload a template material"),
    ("set_primary_video_thumbnail", "KooMessage:devTemplateMaterial:update", AIM, OP, "set a video thumbnail"),
    ("delete_template_material", "KooMessage:devTemplateMaterial:delete", AIM, X, "delete template materials"),
    ("download_aim_template_material", "KooMessage:devTemplateMaterial:get", AIM, R, "download a material file"),
    # --- smart messages: resolution, sending, reports, callbacks -------------------------------------------
    ("create_resolve_task", "KooMessage:devResolveTask:create", AIM, DEV, "mint resolution links (short links)"),
    ("list_resolve_tasks", "KooMessage:devResolveTask:list", AIM, R, "query resolution tasks"),
    ("list_aim_resolve_details", "KooMessage:devResolveDetail:list", AIM, R, "query resolution details"),
    ("regenerate_resolve_task_links", "KooMessage:devResolveTask:regenerate", AIM, DEV, "mint failed links again"),
    ("add_resolve_task_resolving_times", "KooMessage:devResolveTask:update", AIM, DEV, "raise a group link's budget"),
    ("extend_resolve_task_validity", "KooMessage:devResolveTask:update", AIM, DEV, "extend resolution links"),
    ("check_mobile_capability", "KooMessage:devMobileCapability:check", AIM, DEV, "check numbers' capability"),
    ("create_aim_send_task", "KooMessage:devSendTask:create", AIM, DEV, "send smart messages"),
    ("send_aim_batch_messages", "KooMessage:devSendTask:create", AIM, DEV, "send SMS"),
    ("send_aim_batch_different_messages", "KooMessage:devSendTask:create", AIM, DEV, "send SMS in batches"),
    ("list_aim_send_tasks", "KooMessage:devSendTask:list", AIM, R, "query smart-message send tasks"),
    ("cancel_aim_send_task", "KooMessage:devSendTask:cancel", AIM, DEV, "cancel a scheduled smart-message send"),
    ("upload_recipient_file", "KooMessage:devRecipientFile:create", AIM, DEV, "upload a recipient file"),
    ("list_recipient_files", "KooMessage:devRecipientFile:list", AIM, R, "query recipient files"),
    ("show_recipient_file", "KooMessage:devRecipientFile:list", AIM, R, "query a recipient file"),
    ("delete_recipient_file", "KooMessage:devRecipientFile:delete", AIM, X, "delete a recipient file"),
    ("list_aim_send_details", "KooMessage:devSendDetail:list", AIM, R, "query send details"),
    ("list_aim_send_reports", "KooMessage:devSendReport:list", AIM, R, "query send reports"),
    ("add_call_back", "KooMessage:devCallback:create", AIM, OP, "register a callback URL"),
    ("list_aim_callbacks", "KooMessage:devCallback:list", AIM, R, "query callback URLs"),
    # --- SMS apps, signatures, templates (used by smart messages) ------------------------------------------
    ("create_sms_app", "KooMessage:aimMsgApp:create", AIM, OP, "create an SMS app"),
    ("list_aim_msg_app", "KooMessage:aimMsgApp:list", AIM, R, "query SMS apps"),
    ("list_aim_msg_app_detail", "KooMessage:aimMsgApp:list", AIM, R, "query an SMS app"),
    ("update_aim_msg_app", "KooMessage:aimMsgApp:update", AIM, OP, "change an SMS app"),
    ("add_aim_msg_signature", "KooMessage:aimMsgSignature:create", AIM, OP, "create an SMS signature"),
    ("upload_aim_msg_signature_file", "KooMessage:aimMsgSignature:create", AIM, OP, "upload a signature file"),
    ("list_aim_msg_signature", "KooMessage:aimMsgSignature:list", AIM, R, "query SMS signatures"),
    ("list_aim_msg_signature_detail", "KooMessage:aimMsgSignature:list", AIM, R, "query an SMS signature"),
    ("show_aim_msg_signature_file_info", "KooMessage:aimMsgSignature:list", AIM, R, "query a signature file"),
    ("update_aim_msg_signature", "KooMessage:aimMsgSignature:update", AIM, OP, "change an SMS signature"),
    ("delete_aim_msg_signature", "KooMessage:aimMsgSignature:delete", AIM, X, "delete an SMS signature"),
    ("create_aim_msg_template", "KooMessage:aimMsgTemplate:create", AIM, OP, "create an SMS template"),
    ("list_aim_msg_template", "KooMessage:aimMsgTemplate:list", AIM, R, "query SMS templates"),
    ("show_aim_msg_template_detail", "KooMessage:aimMsgTemplate:list", AIM, R, "query an SMS template"),
    ("show_aim_msg_template_variable", "KooMessage:aimMsgTemplate:list", AIM, R, "query SMS template variables"),
    ("update_aim_msg_template", "KooMessage:aimMsgTemplate:update", AIM, OP, "change an SMS template"),
    ("delete_aim_msg_template", "KooMessage:aimMsgTemplate:delete", AIM, X, "delete an SMS template"),
    # --- video SMS (VMS, Basic Edition) ----------------------------------------------------------------------
    ("create_vms_template", "KooMessage:vmsTemplate:create", VMS, OP, "create a video-SMS template"),
    ("list_vms_template_status", "KooMessage:vmsTemplate:list", VMS, R, "query video-SMS templates"),
    ("create_vms_send_task", "KooMessage:vmsSendTask:create", VMS, DEV, "send video SMS"),
    ("list_vms_send_tasks", "KooMessage:vmsSendTask:list", VMS, R, "query video-SMS send tasks"),
    ("add_vms_call_back", "KooMessage:vmsCallback:create", VMS, OP, "register a video-SMS callback URL"),
    ("list_vms_callbacks", "KooMessage:vmsCallback:list", VMS, R, "query video-SMS callback URLs"),
    # --- service numbers (SA) --------------------------------------------------------------------------------
    ("create_pub_info", "KooMessage:saPub:create", SA, OP, "create a service number"),
    ("list_pub_infos", "KooMessage:saPub:list", SA, R, "query service numbers"),
    ("update_pub_info", "KooMessage:saPub:update", SA, OP, "change a service number"),
    ("unfreeze_pub", "KooMessage:saPub:unfreeze", SA, OP, "unfreeze a service number"),
    ("freeze_pub", "KooMessage:saPub:freeze", SA, X, "freeze a service number"),
    ("list_menus", "KooMessage:saMenu:list", SA, R, "query service-number menus"),
    ("update_menu", "KooMessage:saMenu:update", SA, DEV, "edit a menu draft"),
    ("push_menu_info", "KooMessage:saMenu:push", SA, OP, "submit a menu for review"),
    ("list_portal_infos", "KooMessage:saPortal:list", SA, R, "query service-number homepages"),
    ("update_portal_info", "KooMessage:saPortal:update", SA, DEV, "edit a homepage draft"),
    ("push_portal_info", "KooMessage:saPortal:push", SA, OP, "submit a homepage for review"),
    ("upload_media", "KooMessage:saMedia:create", SA, DEV, "upload service-number media"),
    ("download_sa_media", "KooMessage:saMedia:get", SA, R, "download service-number media"),
    ("list_port_infos", "KooMessage:saPort:list", SA, R, "query ports"),
    ("register_port", "KooMessage:saPort:create", SA, OP, "register a port"),
    ("lock_port", "KooMessage:saPort:associate", SA, OP, "bind a port to a service number"),
    ("unlock_port", "KooMessage:saPort:disassociate", SA, X, "unbind a port"),
    ("delete_port_info", "KooMessage:saPort:delete", SA, X, "delete a port"),
    # --- short-link domains and custom jump links (Magpie: /v1/magpie/..., used by smart messages) ------------
    ("create_domain", "KooMessage:domain:create", AIM, OP, "add a short-link domain"),
    ("list_domains", "KooMessage:domain:list", AIM, R, "query short-link domains"),
    ("show_domain", "KooMessage:domain:list", AIM, R, "query a short-link domain"),
    ("update_domain", "KooMessage:domain:update", AIM, OP, "change a rejected domain"),
    ("set_default_domain", "KooMessage:domain:update", AIM, OP, "choose the default domain"),
    ("delete_domain", "KooMessage:domain:delete", AIM, X, "delete a domain (always refused)"),
    ("upload_domain_file", "KooMessage:domainFile:create", AIM, OP, "upload a domain or jump-link document"),
    ("create_jump_links", "KooMessage:jumpLink:create", AIM, OP, "submit custom jump links"),
    ("import_jump_links", "KooMessage:jumpLink:create", AIM, OP, "import custom jump links from a file"),
    ("list_jump_links", "KooMessage:jumpLink:list", AIM, R, "query jump-link batches"),
    ("show_jump_links", "KooMessage:jumpLink:list", AIM, R, "query a jump-link batch"),
    # --- account-wide console features (Magpie: /v1/magpie/...) ---------------------------------------------
    ("create_filing", "KooMessage:filing:create", ACCOUNT, OP, "create an enterprise filing"),
    ("list_filings", "KooMessage:filing:list", ACCOUNT, R, "query enterprise filings"),
    ("show_filing", "KooMessage:filing:list", ACCOUNT, R, "query an enterprise filing"),
    ("update_filing", "KooMessage:filing:update", ACCOUNT, OP, "change an enterprise filing"),
    ("submit_filing", "KooMessage:filing:submit", ACCOUNT, OP, "submit an enterprise filing for review"),
    ("upload_filing_file", "KooMessage:filingFile:create", ACCOUNT, OP, "upload a filing document"),
    ("download_filing_file", "KooMessage:filingFile:get", ACCOUNT, R, "download a filing document"),
    ("list_package_offers", "KooMessage:package:list", ACCOUNT, R, "query the packages on sale"),
    ("list_packages", "KooMessage:package:list", ACCOUNT, R, "query purchased packages"),
    ("show_package", "KooMessage:package:list", ACCOUNT, R, "query a purchased package"),
    ("show_package_usage", "KooMessage:package:list", ACCOUNT, R, "query package usage"),
    ("purchase_package", "KooMessage:package:purchase", ACCOUNT, X, "buy a package (spends money)"),
    ("create_export", "KooMessage:export:create", ACCOUNT, OP, "start an export (download center)"),
    ("retry_export", "KooMessage:export:create", ACCOUNT, OP, "run a failed export again"),
    ("list_exports", "KooMessage:export:list", ACCOUNT, R, "query exports"),
    ("show_export", "KooMessage:export:list", ACCOUNT, R, "query an export"),
    ("download_export", "KooMessage:export:get", ACCOUNT, R, "download an export file"),
    ("delete_export", "KooMessage:export:delete", ACCOUNT, X, "delete an export"),
    # --- IAM (Magpie: /v1/magpie/iam/...) --------------------------------------------------------------------
    ("create_iam_user", "iam:users:createUser", IAMP, OP, "create a sub-user"),
    ("list_iam_users", "iam:users:listUsers", IAMP, R, "list sub-users"),
    ("show_iam_user", "iam:users:getUser", IAMP, R, "show a sub-user"),
    ("update_iam_user", "iam:users:updateUser", IAMP, OP, "change a sub-user (enable, password, description)"),
    ("delete_iam_user", "iam:users:deleteUser", IAMP, X, "delete a sub-user"),
    ("create_iam_access_key", "iam:credentials:createCredential", IAMP, OP, "create a sub-user access key"),
    ("list_iam_access_keys", "iam:credentials:listCredentials", IAMP, R, "list a sub-user's access keys"),
    ("update_iam_access_key", "iam:credentials:updateCredential", IAMP, OP, "enable or disable an access key"),
    ("delete_iam_access_key", "iam:credentials:deleteCredential", IAMP, X, "delete an access key"),
    ("list_iam_policies", "iam:roles:listRoles", IAMP, R, "list system and custom policies"),
    ("list_iam_actions", "iam:roles:listRoles", IAMP, R, "list the action names of the operations"),
    ("show_iam_policy", "iam:roles:getRole", IAMP, R, "show a policy"),
    ("create_iam_policy", "iam:roles:createRole", IAMP, OP, "create a custom policy"),
    ("update_iam_policy", "iam:roles:updateRole", IAMP, OP, "change a custom policy"),
    ("delete_iam_policy", "iam:roles:deleteRole", IAMP, X, "delete a custom policy"),
    ("list_iam_user_policies", "iam:permissions:listRolesForUser", IAMP, R, "list a sub-user's policies"),
    ("attach_iam_user_policy", "iam:permissions:grantRoleToUser", IAMP, OP, "attach a policy to a sub-user"),
    ("detach_iam_user_policy", "iam:permissions:revokeRoleFromUser", IAMP, X, "detach a policy from a sub-user"),
)

ACTIONS: dict[str, OperationAction] = {row[0]: OperationAction(*row) for row in _ROWS}
"""operation (route summary) -> its action"""

PUBLIC_OPERATIONS: frozenset[str] = frozenset({"create_token", "show_token", "revoke_token"})
"""Operations any authenticated caller may use without a policy (each acts only on the caller's own tokens)."""

ROOT_ONLY_OPERATIONS: frozenset[str] = frozenset({"update_iam_account_password"})
"""Operations of the main account alone: denied to every sub-user whatever its policies (no action exists)."""

KNOWN_ACTIONS: frozenset[str] = frozenset(entry.action for entry in ACTIONS.values())


def action_for(operation: str | None) -> OperationAction | None:
    return ACTIONS.get(operation) if operation else None


def actions_of(products: frozenset[Product], kinds: frozenset[Kind]) -> list[str]:
    """The distinct actions of the given products and kinds, sorted."""
    return sorted({e.action for e in ACTIONS.values() if e.product in products and e.kind in kinds})


def kind_of_action(action: str) -> Kind:
    """The kind of an action (an action shared by several operations has one kind)."""
    for entry in ACTIONS.values():
        if entry.action == action:
            return entry.kind
    raise KeyError(action)
