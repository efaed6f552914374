"""Error codes the business endpoints use beyond the catalogue in ``magpie_gateway.errors``.

KooMessage documents no codes for these situations, so Magpie defines them in its own ``KM.00000xxx`` range
(the same range as ``KM.00000400`` / ``KM.00000500`` in ``errors.py``):

=============  ====  =====================================================================================
KM.00000404    404   the resource does not exist (also for another tenant's ids: never their data)
KM.00000409    409   ``Idempotency-Key`` reused with a different request, or still in progress
KM.00000421    400   the SMS app of the request does not exist
KM.00000422    400   the tenant already has the maximum number of SMS apps (2)
KM.00000423    400   the name is already used (app, signature)
KM.00000424    400   the SMS signature does not exist or is not approved
KM.00000425    400   the SMS template does not exist or is not approved
KM.00000426    400   the AIM template does not exist
KM.00000427    400   the AIM template is not approved by any vendor
KM.00000428    400   the callback / uplink URL is not acceptable (scheme, length, non-public address)
KM.00000429    400   the feature is not supported yet (group links, custom short codes)
KM.00000430    400   an uploaded file is empty or of a type not accepted here (decided by its content)
KM.00000403    403   IAM: the caller's policies do not allow the action (or a Deny statement matched)
=============  ====  =====================================================================================

Ranges for the codes of each area (add new ones at the end of this module, with a row above):
IAM/tokens KM.0000044x, AIM templates and materials KM.0000045x, resolution tasks / reports / capability checks
KM.0000046x, SMS apps/signatures/templates/sends KM.0000047x, VMS KM.0000048x, service numbers KM.0000049x,
console features (filings, domains, jump links, packages, exports) KM.0000050x-KM.0000051x. Where KooMessage
documents a code for the situation (``KM.9001xxxx``, ``KM.0000xxxx``, ``KM.8004000x``), that code is used instead.

Codes added per area:

=============  ====  =====================================================================================
KM.00000441    400   IAM: the policy document is not valid (JSON shape, Effect, action names; the message says where)
KM.00000442    400   IAM: the custom policy is still attached to sub-users (detach it first)
KM.00000443    400   IAM: a limit is reached (sub-users per tenant, access keys per user, policies per tenant/user)
KM.00000444    400   IAM: the password breaks the password rules (length, character mix, not the user name)
KM.00000445    400   IAM: system policies cannot be changed or deleted
KM.00000450    400   AIM template material: still used by an AIM template (remove it from the template first)
KM.00000451    400   AIM template materials: the tenant's storage quota (10 GB) would be exceeded
KM.00000452    400   AIM template material: the ``file_url`` could not be downloaded
KM.00000460    503   resolution tasks / capability checks: the shortlink or number-resolver service is unavailable
                     (retry; the request changed nothing, or left a resolution task ``failed``)
KM.00000461    400   resolution task: the ``domain`` is not an approved short-link domain of the tenant for that kind
                     of short code (standard / custom)
KM.00000462    409   resolution task: busy: its links are being generated, regenerated or changed by another request
                     (retry shortly)
KM.00000463    400   resolution task: the resolution count cannot be raised (an individual task: its links resolve
                     once; a lower total than now; above 2147483647)
KM.00000464    400   resolution task: the validity cannot be changed so (shorter than now; beyond the maximum from
                     creation: individual 7 days, group 180 days; the links expired longer ago than the edge keeps
                     them), or the task has expired (regenerating needs a validity extension first)
KM.00000465    400   scheduled send: ``X-Magpie-Send-At`` is not an ISO 8601 time with an offset, is not in the
                     future, or is more than 30 days ahead
KM.00000466    400   scheduled send: a promotion (marketing) task's send time is outside the marketing send window
                     (08:00-21:00 local time)
KM.00000467    400   send task cancel: the task is not scheduled, or its send time is reached (or too close to cancel)
KM.00000470    400   SMS signature / SMS template: only a rejected one can be modified (KooMessage's rule)
KM.00000480    400   VMS template: the resources break the frame rules (at most 8 frames, at most 2 elements per frame
                     one of them text, text mixed with media, indexes all given or none, unique)
KM.00000481    400   VMS template: larger than 1.9 MB in total (texts and media)
KM.00000482    400   VMS template: a medium is not acceptable (not base64, empty, over 2 MB, or its content is not of
                     the declared type: image jpg/jpeg/png/gif, audio mp3/wav, video mp4/3gp)
KM.00000483    400   VMS template: the params break the rules (more than 12 ``#p_N#``, N outside 1-100, a param
                     placeholder outside a text)
KM.00000484    400   VMS template: the title or a text breaks the content rules (【】 or quotes in the title, the first
                     text does not start with 【signature】, 【】 elsewhere)
KM.00000485    400   VMS send task: the VMS template does not exist
KM.00000486    400   VMS send task: the VMS template is not usable (draft, under review, rejected by every carrier,
                     disabled or expired)
KM.00000487    400   VMS send task: the recipients are not acceptable (mobiles and individual_params both or neither,
                     individual params for a static template, a malformed mobile)
KM.00000488    400   VMS send task: the dynamic params do not match the template's params
KM.00000489    400   VMS template: a resource given by URL could not be downloaded
KM.00000490    400   service number media: an image does not fit its use (dimensions or ratio on upload; a reference
                     to media uploaded with another ``file_type``; authorisation files over 4 MB together)
KM.00000491    400   service number: the operation does not fit its state (freezing a frozen or not yet effective
                     one, unfreezing one that is not frozen or already under review, changing a frozen one)
KM.00000492    400   service number: not approved (effective) yet: menus and homepages cannot be pushed, ports not bound
KM.00000493    400   service number menu / homepage push: nothing awaits review (the current version is decided)
KM.00000494    400   service number port: the tenant already registered this port (same number and type)
KM.00000495    400   service number port: not approved yet, it cannot be bound
KM.00000496    400   service number port: still bound to a service number (unbind it first), it cannot be deleted
KM.00000497    400   service number port binding: overlaps a binding of the port (a shared signature in an
                     overlapping region)
KM.00000501    400   filing: under review (PENDING): it cannot be submitted or edited again until the decision
KM.00000502    400   filing: required materials or enterprise fields are missing (the message lists them)
KM.00000503    400   filing: the tenant already has a filing for this product (edit that one)
KM.00000504    400   filing: the operation does not fit the filing's state (e.g. submitting an approved filing)
KM.00000505    400   console file reference: the file does not exist (for this tenant) or does not fit the material
KM.00000506    400   domain: only a rejected domain can be edited
KM.00000507    400   domain: domains cannot be deleted
KM.00000508    400   domain: only an approved domain can be the default
KM.00000509    400   jump links: not acceptable (more than 10 manual / 10,000 in a file, a bad URL, an unreadable
                     xlsx or wrong columns; the message gives the positions or row numbers)
KM.00000510    400   export: the file is not available (the export has not succeeded, or it expired)
KM.00000511    400   export: only a failed export can be retried
KM.00000512    400   packages: unknown package type, size not offered, or quantity out of range
KM.00000513    503   packages: the billing service is unavailable (retry with the same Idempotency-Key)
KM.00000514    400   enterprise filing: sending needs an approved filing of the product (AIM: smart-message send
                     tasks, resolution tasks, plain SMS sends; VMS: VMS send tasks and the VMS fallback of smart
                     sends; SA: creating service numbers); see ``filing_gate``
KM.00000515    400   recipient file: the text is not UTF-8, UTF-8 with a BOM or GB18030 (``recipient_file_parser``)
KM.00000516    400   recipient file: broken content (an unreadable xlsx, no mobile column, a row with more cells than
                     the header, an unnamed or repeated column, a value too long, a broken CSV quote; the message
                     names the row), or a send task's ``recipient_file_id`` combined with inline params or custom
                     short codes
=============  ====  =====================================================================================
"""

from __future__ import annotations

from magpie_gateway.errors import ApiError, ErrorCode

NOT_FOUND = ErrorCode("KM.00000404", 404, "The resource does not exist")
IDEMPOTENCY_CONFLICT = ErrorCode("KM.00000409", 409, "The Idempotency-Key was used for a different request")
SMS_APP_NOT_FOUND = ErrorCode("KM.00000421", 400, "The SMS app does not exist")
SMS_APP_LIMIT = ErrorCode("KM.00000422", 400, "The maximum number of SMS apps has been reached")
NAME_TAKEN = ErrorCode("KM.00000423", 400, "The name is already in use")
SIGNATURE_UNUSABLE = ErrorCode("KM.00000424", 400, "The SMS signature does not exist or is not approved")
SMS_TEMPLATE_UNUSABLE = ErrorCode("KM.00000425", 400, "The SMS template does not exist or is not approved")
AIM_TEMPLATE_NOT_FOUND = ErrorCode("KM.00000426", 400, "The AIM template does not exist")
AIM_TEMPLATE_NOT_APPROVED = ErrorCode("KM.00000427", 400, "The AIM template is not approved by any vendor")
URL_REJECTED = ErrorCode("KM.00000428", 400, "The URL is not acceptable")
NOT_SUPPORTED = ErrorCode("KM.00000429", 400, "The feature is not supported yet")
FILE_REJECTED = ErrorCode("KM.00000430", 400, "The file is not acceptable")
FORBIDDEN = ErrorCode("KM.00000403", 403, "The operation is not allowed by your IAM policies")


def not_found(what: str) -> ApiError:
    return ApiError.of(NOT_FOUND, f"{NOT_FOUND.message}: {what}")


def fail(code: ErrorCode, detail: str | None = None) -> ApiError:
    """An ``ApiError`` of ``code`` whose message is the default message, followed by ``detail`` if given."""
    return ApiError.of(code, f"{code.message}: {detail}" if detail else code.message)


# IAM and tokens (KM.0000044x)
POLICY_INVALID = ErrorCode("KM.00000441", 400, "The policy document is not valid")
POLICY_IN_USE = ErrorCode("KM.00000442", 400, "The policy is attached to sub-users")
IAM_LIMIT = ErrorCode("KM.00000443", 400, "An IAM limit has been reached")
WEAK_PASSWORD = ErrorCode("KM.00000444", 400, "The password does not meet the password rules")
SYSTEM_POLICY_READ_ONLY = ErrorCode("KM.00000445", 400, "System policies cannot be changed or deleted")


# AIM templates and materials (KM.0000045x)
MATERIAL_IN_USE = ErrorCode("KM.00000450", 400, "The material is used by an AIM template")
MATERIAL_QUOTA_EXCEEDED = ErrorCode("KM.00000451", 400, "The material storage quota would be exceeded")
MATERIAL_URL_UNREACHABLE = ErrorCode("KM.00000452", 400, "The material file could not be downloaded")


# Resolution tasks, reports, capability checks (KM.0000046x)
UPSTREAM_UNAVAILABLE = ErrorCode("KM.00000460", 503, "A Magpie service this operation needs is unavailable; retry")
DOMAIN_UNUSABLE = ErrorCode("KM.00000461", 400, "The domain is not an approved short-link domain for these links")
RESOLVE_TASK_BUSY = ErrorCode("KM.00000462", 409, "The resolution task is being changed by another request; retry")
RESOLVING_TIMES_INVALID = ErrorCode("KM.00000463", 400, "The resolution count of the task cannot be raised so")
VALIDITY_INVALID = ErrorCode("KM.00000464", 400, "The validity of the task's links cannot be changed so")
SEND_AT_INVALID = ErrorCode("KM.00000465", 400, "The scheduled send time is not acceptable")
SEND_AT_OUTSIDE_WINDOW = ErrorCode("KM.00000466", 400, "The send time of a marketing task is outside the send window")
NOT_CANCELABLE = ErrorCode("KM.00000467", 400, "The send task cannot be cancelled")


# SMS apps, signatures, SMS templates and sends (KM.0000047x)
NOT_MODIFIABLE = ErrorCode("KM.00000470", 400, "Only a rejected SMS signature or template can be modified")


# VMS (KM.0000048x)
VMS_FRAMES_INVALID = ErrorCode("KM.00000480", 400, "The VMS template resources break the frame rules")
VMS_TEMPLATE_TOO_LARGE = ErrorCode("KM.00000481", 400, "The VMS template is larger than 1.9 MB")
VMS_MEDIA_REJECTED = ErrorCode("KM.00000482", 400, "A VMS template medium is not acceptable")
VMS_PARAMS_INVALID = ErrorCode("KM.00000483", 400, "The VMS template params break the rules")
VMS_CONTENT_INVALID = ErrorCode("KM.00000484", 400, "The VMS template title or text breaks the content rules")
VMS_TEMPLATE_NOT_FOUND = ErrorCode("KM.00000485", 400, "The VMS template does not exist")
VMS_TEMPLATE_UNUSABLE = ErrorCode("KM.00000486", 400, "The VMS template is not usable")
VMS_RECIPIENTS_INVALID = ErrorCode("KM.00000487", 400, "The VMS recipients are not acceptable")
VMS_PARAMS_MISMATCH = ErrorCode("KM.00000488", 400, "The dynamic params do not match the VMS template's params")
VMS_URL_UNREACHABLE = ErrorCode("KM.00000489", 400, "A VMS template resource could not be downloaded")


# Service numbers (KM.0000049x)
SA_MEDIA_UNSUITABLE = ErrorCode("KM.00000490", 400, "The image does not fit its use")
SA_STATE_CONFLICT = ErrorCode("KM.00000491", 400, "The operation does not fit the state of the service number")
SA_PUB_NOT_APPROVED = ErrorCode("KM.00000492", 400, "The service number is not approved and effective")
SA_NOTHING_TO_PUSH = ErrorCode("KM.00000493", 400, "Nothing awaits review")
SA_PORT_EXISTS = ErrorCode("KM.00000494", 400, "The port is already registered")
SA_PORT_NOT_APPROVED = ErrorCode("KM.00000495", 400, "The port is not approved")
SA_PORT_BOUND = ErrorCode("KM.00000496", 400, "The port is bound to a service number; unbind it first")
SA_BINDING_OVERLAP = ErrorCode("KM.00000497", 400, "The binding overlaps another binding of the port")


# Console features: filings, domains, jump links, exports, packages (KM.0000050x-KM.0000051x)
FILING_UNDER_REVIEW = ErrorCode("KM.00000501", 400, "The filing is under review and cannot be changed or resubmitted")
FILING_INCOMPLETE = ErrorCode("KM.00000502", 400, "The filing lacks required materials")
FILING_EXISTS = ErrorCode("KM.00000503", 400, "A filing for this product already exists")
FILING_STATE = ErrorCode("KM.00000504", 400, "The operation does not fit the state of the filing")
CONSOLE_FILE_UNUSABLE = ErrorCode("KM.00000505", 400, "The referenced file cannot be used here")
DOMAIN_NOT_EDITABLE = ErrorCode("KM.00000506", 400, "Only a rejected domain can be edited")
DOMAIN_NOT_DELETABLE = ErrorCode("KM.00000507", 400, "Domains cannot be deleted")
DOMAIN_NOT_APPROVED = ErrorCode("KM.00000508", 400, "Only an approved domain can be the default domain")
JUMP_LINKS_INVALID = ErrorCode("KM.00000509", 400, "The jump links are not acceptable")
EXPORT_NOT_READY = ErrorCode("KM.00000510", 400, "The export file is not available")
EXPORT_NOT_RETRYABLE = ErrorCode("KM.00000511", 400, "Only a failed export can be retried")
PACKAGE_OFFER_UNKNOWN = ErrorCode("KM.00000512", 400, "The package is not offered")
BILLING_UNAVAILABLE = ErrorCode("KM.00000513", 503, "The billing service is unavailable; retry")
FILING_REQUIRED = ErrorCode("KM.00000514", 400, "An approved enterprise filing is required")
RECIPIENT_FILE_ENCODING = ErrorCode(
    "KM.00000515", 400, "The recipient file is not text in UTF-8, UTF-8 with a BOM or GB18030"
)
RECIPIENT_FILE_MALFORMED = ErrorCode("KM.00000516", 400, "The recipient file cannot be used")
