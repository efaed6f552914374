"""KooMessage-compatible error responses for the gateway.

Every error leaves the gateway as ``{"error_code": "...", "error_msg": "..."}`` with an ``X-Request-Id``
response header. That is exactly what the official SDK's ``DefaultExceptionHandler`` parses: it reads
``error_code`` and ``error_msg`` (both keys must be present), takes ``X-Request-Id`` as
``exception.request_id`` and raises ``ClientRequestException`` for 4xx, ``ServerResponseException`` for 5xx
(``status_code``, ``error_code``, ``error_msg`` and ``request_id`` are the attributes the caller sees).

Code catalogue
--------------
Gateway-level codes follow Huawei Cloud API Gateway (APIGW.xxxx) conventions, so code written against the
real service keeps working:

=============  ====  =========================================================================
APIGW.0101     404   API not found (unknown path; also used, with status 405, for a wrong method)
APIGW.0301     401   Incorrect IAM authentication information (every AK/SK signature failure;
                     ``error_msg`` says which check failed, see ``magpie_gateway.auth.middleware``)
APIGW.0302     403   The IAM user is not authorized to access the API
APIGW.0308     429   The throttling threshold has been reached
=============  ====  =========================================================================

Generic KooMessage-style codes defined by Magpie (not in the KooMessage documentation):

=============  ====  =========================================================================
KM.00000400    400   Invalid request parameter (request validation errors)
KM.00000413    413   Request body too large
KM.00000500    500   Internal server error (details are logged with the request id, never returned)
=============  ====  =========================================================================

KooMessage codes documented in product-spec.md section 7 are the remaining constants (HTTP 400). A request
whose JSON body is missing entirely is reported as ``KM.90016414`` (empty input).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_STATE_KEY = "request_id"
_MAX_VALIDATION_ERRORS_IN_MESSAGE = 5


@dataclass(frozen=True, slots=True)
class ErrorCode:
    """A catalogued error: its code, the HTTP status it is returned with, and a default message."""

    code: str
    http_status: int
    message: str


# --- gateway (API Gateway style) -------------------------------------------------------------------------
API_NOT_FOUND = ErrorCode("APIGW.0101", 404, "The API does not exist or has not been published")
AUTH_FAILED = ErrorCode("APIGW.0301", 401, "Incorrect IAM authentication information")
ACCESS_DENIED = ErrorCode("APIGW.0302", 403, "The IAM user is not authorized to access the API")
THROTTLED = ErrorCode("APIGW.0308", 429, "The throttling threshold has been reached")

# --- generic, Magpie-defined ----------------------------------------------------------------------------
INVALID_PARAMETER = ErrorCode("KM.00000400", 400, "Invalid request parameter")
REQUEST_TOO_LARGE = ErrorCode("KM.00000413", 413, "Request body too large")
INTERNAL_ERROR = ErrorCode("KM.00000500", 500, "Internal server error")

# --- KooMessage (product-spec.md section 7) ---------------------------------------------------------------
TOO_MANY_MOBILES = ErrorCode(
    "KM.90016301", 400, "The number of mobile numbers exceeds the limit; split the request into batches"
)
TOO_MANY_SHORT_LINKS = ErrorCode("KM.90016403", 400, "Too many short links requested; split the request into batches")
EMPTY_INPUT = ErrorCode("KM.90016414", 400, "The input is empty")
TOO_MANY_SHORT_CODES = ErrorCode("KM.90016416", 400, "The number of short codes exceeds the limit")
DUPLICATE_CUSTOM_SHORT_LINK = ErrorCode("KM.90016482", 400, "The custom short link already exists")
SENSITIVE_WORDS = ErrorCode("KM.90016801", 400, "The content contains sensitive words")
CARD_PARAMS_MISMATCH = ErrorCode("KM.90016802", 400, "The card dynamic parameters do not match the template parameters")
EMPTY_SIGNATURE = ErrorCode("KM.00001075", 400, "The signature is empty")
SIGNATURE_LENGTH_INVALID = ErrorCode("KM.00001076", 400, "The signature length is invalid")
SMS_PARAMS_COUNT_MISMATCH = ErrorCode(
    "KM.00001376", 400, "The number of sms_params does not match the SMS template variables"
)
SMS_TEMPLATE_LACKS_LINK = ErrorCode("KM.00001377", 400, "The SMS template lacks the link parameter")
TEMPLATE_CREATE_FAILED = ErrorCode("KM.80040004", 400, "Failed to create the template")
TEMPLATE_UPDATE_FAILED = ErrorCode("KM.80040005", 400, "Failed to update the template")
TEMPLATE_DELETE_FAILED = ErrorCode("KM.80040006", 400, "Failed to delete the template")

CATALOGUE: dict[str, ErrorCode] = {
    entry.code: entry
    for entry in (
        API_NOT_FOUND,
        AUTH_FAILED,
        ACCESS_DENIED,
        THROTTLED,
        INVALID_PARAMETER,
        REQUEST_TOO_LARGE,
        INTERNAL_ERROR,
        TOO_MANY_MOBILES,
        TOO_MANY_SHORT_LINKS,
        EMPTY_INPUT,
        TOO_MANY_SHORT_CODES,
        DUPLICATE_CUSTOM_SHORT_LINK,
        SENSITIVE_WORDS,
        CARD_PARAMS_MISMATCH,
        EMPTY_SIGNATURE,
        SIGNATURE_LENGTH_INVALID,
        SMS_PARAMS_COUNT_MISMATCH,
        SMS_TEMPLATE_LACKS_LINK,
        TEMPLATE_CREATE_FAILED,
        TEMPLATE_UPDATE_FAILED,
        TEMPLATE_DELETE_FAILED,
    )
}


class ApiError(Exception):
    """An error that is rendered to the client as ``{"error_code", "error_msg"}`` with ``http_status``."""

    def __init__(self, http_status: int, error_code: str, error_msg: str) -> None:
        super().__init__(f"{http_status} {error_code}: {error_msg}")
        self.http_status = http_status
        self.error_code = error_code
        self.error_msg = error_msg

    @classmethod
    def of(cls, code: ErrorCode, error_msg: str | None = None) -> ApiError:
        """Build from a catalogued code; ``error_msg`` replaces the default message when given."""
        return cls(code.http_status, code.code, error_msg if error_msg is not None else code.message)


def ensure_request_id(scope: Scope) -> str:
    """Return the request id stored in ``scope["state"]``, creating a 32-hex-digit one on first use.

    ``request.state.request_id`` therefore holds the same value for the handlers of the request.
    """
    state: dict[str, Any] = scope.setdefault("state", {})
    request_id = state.get(_REQUEST_ID_STATE_KEY)
    if not isinstance(request_id, str):
        request_id = uuid.uuid4().hex
        state[_REQUEST_ID_STATE_KEY] = request_id
    return request_id


def error_response(
    http_status: int,
    error_code: str,
    error_msg: str,
    request_id: str,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The KooMessage error body with the ``X-Request-Id`` header the SDK copies to ``request_id``."""
    all_headers = dict(headers or {})
    all_headers[REQUEST_ID_HEADER] = request_id
    return JSONResponse(
        status_code=http_status,
        content={"error_code": error_code, "error_msg": error_msg},
        headers=all_headers,
    )


def api_error_response(error: ApiError, scope: Scope) -> JSONResponse:
    return error_response(error.http_status, error.error_code, error.error_msg, ensure_request_id(scope))


def _format_location(location: Sequence[Any]) -> str:
    return ".".join(str(part) for part in location)


def validation_error_to_api_error(errors: Sequence[Any]) -> ApiError:
    """Map FastAPI validation errors to KM.90016414 (body missing) or KM.00000400 (anything else).

    The message lists the offending locations and pydantic's messages; input values are never echoed.
    """
    entries = [error for error in errors if isinstance(error, dict)]
    if entries and all(
        error.get("type") == "missing" and tuple(error.get("loc", ())) == ("body",) for error in entries
    ):
        return ApiError.of(EMPTY_INPUT, "The input is empty: a JSON request body is required")
    parts = [
        f"{_format_location(error.get('loc', ()))}: {error.get('msg', 'invalid value')}"
        for error in entries[:_MAX_VALIDATION_ERRORS_IN_MESSAGE]
    ]
    if len(entries) > _MAX_VALIDATION_ERRORS_IN_MESSAGE:
        parts.append(f"and {len(entries) - _MAX_VALIDATION_ERRORS_IN_MESSAGE} more")
    detail = "; ".join(parts) if parts else "malformed request"
    return ApiError.of(INVALID_PARAMETER, f"{INVALID_PARAMETER.message}: {detail}")


def http_exception_to_api_error(status_code: int, detail: Any) -> ApiError:
    """Map a Starlette/FastAPI ``HTTPException`` (routing 404/405, explicit raises) onto the catalogue."""
    by_status = {
        401: AUTH_FAILED,
        403: ACCESS_DENIED,
        404: API_NOT_FOUND,
        405: API_NOT_FOUND,
        413: REQUEST_TOO_LARGE,
        429: THROTTLED,
    }
    code = by_status.get(status_code)
    if code is None:
        code = INTERNAL_ERROR if status_code >= 500 else INVALID_PARAMETER
    if status_code >= 500:
        message = code.message
    elif isinstance(detail, str) and detail and detail not in ("Not Found", "Method Not Allowed"):
        message = f"{code.message}: {detail}"
    else:
        message = code.message
    return ApiError(status_code, code.code, message)


async def _handle_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return api_error_response(exc, request.scope)


async def _handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return api_error_response(validation_error_to_api_error(exc.errors()), request.scope)


async def _handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error = http_exception_to_api_error(exc.status_code, exc.detail)
    response = api_error_response(error, request.scope)
    for name, value in (exc.headers or {}).items():
        response.headers.setdefault(name, value)
    return response


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    request_id = ensure_request_id(request.scope)
    logger.error(
        "unhandled error request_id=%s method=%s path=%s",
        request_id,
        request.method,
        request.url.path,
        exc_info=exc,
    )
    return error_response(INTERNAL_ERROR.http_status, INTERNAL_ERROR.code, INTERNAL_ERROR.message, request_id)


def install_error_handlers(app: FastAPI) -> None:
    """Register the KooMessage error rendering for ApiError, validation, HTTP and unexpected exceptions.

    Unexpected exceptions become 500 ``KM.00000500`` with a generic message; the traceback is logged with
    the request id (Starlette re-raises after responding, so the server also logs it).
    """
    app.add_exception_handler(ApiError, _handle_api_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(Exception, _handle_unexpected)


class RequestIdMiddleware:
    """ASGI middleware: gives every HTTP request an id and adds ``X-Request-Id`` to every response.

    Add it outermost among the user middlewares (``app.add_middleware`` last) so that error responses
    written by inner middlewares (e.g. the signature check) and the endpoint share the same id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = ensure_request_id(scope)
        header_name = REQUEST_ID_HEADER.lower().encode("latin-1")

        async def send_with_request_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == header_name for name, _ in headers):
                    headers.append((header_name, request_id.encode("latin-1")))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_request_id)
