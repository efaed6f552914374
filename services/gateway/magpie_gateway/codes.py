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
KM.00000429    400   the feature is not supported yet (VMS fallback, group links, custom short codes)
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
