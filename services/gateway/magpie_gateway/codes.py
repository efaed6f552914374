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


def not_found(what: str) -> ApiError:
    return ApiError.of(NOT_FOUND, f"{NOT_FOUND.message}: {what}")


def fail(code: ErrorCode, detail: str | None = None) -> ApiError:
    """An ``ApiError`` of ``code`` whose message is the default message, followed by ``detail`` if given."""
    return ApiError.of(code, f"{code.message}: {detail}" if detail else code.message)
