"""The FastAPI application: KooMessage v1 routes behind the AK/SK signature middleware, internal operator
routes, the ops routes (/metrics, /healthz, /readyz) and the OpenAPI docs (/docs)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import Depends, FastAPI

from magpie_common.service import ops_routes
from magpie_gateway import (
    aim_materials_api,
    aim_templates_api,
    apps_api,
    callbacks_api,
    capability_api,
    domains_api,
    exports_api,
    filings_api,
    iam_api,
    internal_api,
    packages_api,
    recipient_files_api,
    resolve_tasks_api,
    sa_menus_api,
    sa_ports_api,
    sa_pubs_api,
    send_details_api,
    send_reports_api,
    send_task_control_api,
    send_tasks_api,
    signatures_api,
    sms_sends_api,
    sms_templates_api,
    template_reports_api,
    vms_api,
)
from magpie_gateway.auth import ReplayStore, SignatureAuthMiddleware
from magpie_gateway.auth.tokens import TokenStore
from magpie_gateway.context import GatewayContext
from magpie_gateway.errors import RequestIdMiddleware, install_error_handlers
from magpie_gateway.iam.authorization import AuthorizationMiddleware, authorize
from magpie_gateway.idempotency_middleware import IdempotencyMiddleware
from magpie_gateway.openapi_docs import install as install_openapi_docs
from magpie_gateway.replay_scope import RequestMethodMiddleware

OPS_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
# Operations that handle Idempotency-Key themselves (resuming a half-created task or upload with its id; the
# middleware would also hold their big bodies in memory).
IDEMPOTENCY_OWN_PATHS = frozenset({"/v1/aim/send-tasks", recipient_files_api.UPLOAD_PATH})
# A token's answer carries the token in a header that a stored answer would not replay: never deduplicated.
IDEMPOTENCY_EXEMPT_PATHS = IDEMPOTENCY_OWN_PATHS | {iam_api.TOKEN_PATH}
UNSIGNED_PATHS = OPS_PATHS | DOC_PATHS | internal_api.INTERNAL_PATHS
UNSIGNED_PREFIXES = (internal_api.INTERNAL_PREFIX,)
# Signature or token optional: POST /v3/auth/tokens with a password needs neither.
OPTIONAL_AUTH_PATHS = frozenset({iam_api.TOKEN_PATH})

DESCRIPTION = """
The public API of Magpie, compatible with Huawei Cloud KooMessage v1: point the official
`huaweicloudsdkkoomessage` SDK at this gateway with an access key pair of your tenant.

Every `/v1/...` call is signed with SDK-HMAC-SHA256 (AK/SK) exactly as the SDK signs it, or carries an
`X-Auth-Token` obtained from `POST /v3/auth/tokens` (valid 24 hours). Errors are `{"error_code", "error_msg"}`
with an `X-Request-Id` header.

IAM: the main account may call everything; a sub-user only the operations its policies allow (403 `KM.00000403`
otherwise). Sub-users, access keys and policies: `/v1/magpie/iam/...`; action names: `GET /v1/magpie/iam/actions`.

Magpie extensions: header `X-Magpie-Fallback: skip|sms|vms` on `POST /v1/aim/send-tasks`;
`Idempotency-Key` on every create (every signed `POST`); extra fields in responses (the SDK ignores them),
e.g. `magpie_summary` of a task.
"""


def create_app(
    context: GatewayContext,
    readiness: Callable[[], Awaitable[dict[str, bool]]],
    *,
    replay_store: ReplayStore | None,
) -> FastAPI:
    # Authorization (IAM policies of sub-users): AuthorizationMiddleware decides before Idempotency-Key handling;
    # the dependency re-checks after routing any route the middleware did not authorize (fail closed).
    app = FastAPI(
        title="Magpie gateway",
        version="1.0",
        description=DESCRIPTION,
        docs_url="/docs",
        dependencies=[Depends(authorize)],
    )
    app.state.gateway = context
    install_error_handlers(app)
    for module in (
        apps_api,
        signatures_api,
        sms_templates_api,
        aim_templates_api,
        callbacks_api,
        send_tasks_api,
        recipient_files_api,
        send_details_api,
        send_task_control_api,
        send_reports_api,
        resolve_tasks_api,
        capability_api,
        aim_materials_api,
        template_reports_api,
        sms_sends_api,
        vms_api,
        sa_pubs_api,
        sa_menus_api,
        sa_ports_api,
        filings_api,
        domains_api,
        packages_api,
        exports_api,
        iam_api,
        internal_api,
    ):
        app.include_router(module.router)
    app.router.routes.extend(ops_routes(readiness))
    install_openapi_docs(app)
    # Inside the signature check (it needs the principal): every signed POST may carry an Idempotency-Key.
    app.add_middleware(
        IdempotencyMiddleware,
        collection=context.collections.idempotency,
        exempt_paths=IDEMPOTENCY_EXEMPT_PATHS,
    )
    # Inside the signature check (it needs the principal), outside the Idempotency-Key handling.
    app.add_middleware(AuthorizationMiddleware, router=app.router, context=context)
    app.add_middleware(
        SignatureAuthMiddleware,
        lookup=context.credentials,
        replay_store=replay_store,
        max_skew=timedelta(seconds=context.config.max_skew_s),
        exempt_paths=UNSIGNED_PATHS,
        exempt_prefixes=UNSIGNED_PREFIXES,
        optional_paths=OPTIONAL_AUTH_PATHS,
        token_lookup=TokenStore(context.collections.tokens),
        max_body_bytes=context.config.max_body_bytes,
        body_limits={recipient_files_api.UPLOAD_PATH: recipient_files_api.MAX_UPLOAD_BYTES},
    )
    app.add_middleware(RequestMethodMiddleware)  # outside the signature check: tells the replay store the method
    app.add_middleware(RequestIdMiddleware)  # outermost: every response, errors included, has X-Request-Id
    return app
