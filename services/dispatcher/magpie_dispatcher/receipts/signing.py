"""Webhook signatures (Standard Webhooks, https://www.standardwebhooks.com, PyPI ``standardwebhooks``).

When ``MAGPIE_RECEIPT_SIGNING_SECRET`` is set (a ``whsec_<base64>`` master secret), every receipt POST carries

- ``webhook-id``: the envelope's ``request_id`` (a receipt's or a batch's id; the same on every retry),
- ``webhook-timestamp``: Unix seconds of this attempt,
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<raw body>">``,

signed with the *tenant's* secret, derived from the master secret so that no tenant can sign for another::

    tenant_key    = HMAC-SHA256(key = base64decode(master without "whsec_"), msg = "magpie-receipts:" + tenant_id)
    tenant_secret = "whsec_" + base64(tenant_key)

The customer verifies with ``standardwebhooks.Webhook(tenant_secret).verify(raw_body, headers)``;
``tenant_signing_secret`` computes the secret to hand to a tenant. Unset = POSTs are not signed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def _master_key(master_secret: str) -> bytes:
    raw = master_secret.strip()
    if raw.startswith(SECRET_PREFIX):
        raw = raw[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError as exc:
        raise ValueError("MAGPIE_RECEIPT_SIGNING_SECRET must be 'whsec_' followed by base64") from exc
    if len(key) < 16:
        raise ValueError("MAGPIE_RECEIPT_SIGNING_SECRET must hold at least 16 bytes of key material")
    return key


def tenant_signing_secret(master_secret: str, tenant_id: str) -> str:
    """The ``whsec_...`` secret a tenant verifies its receipts with."""
    key = hmac.new(_master_key(master_secret), f"magpie-receipts:{tenant_id}".encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(key).decode()


class ReceiptSigner:
    """Signs POST bodies with per-tenant Standard Webhooks secrets."""

    def __init__(self, master_secret: str) -> None:
        self.master_secret = master_secret
        _master_key(master_secret)  # fail fast on a malformed secret
        self._webhooks: dict[str, Webhook] = {}

    def headers(self, tenant_id: str, webhook_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
        webhook = self._webhooks.get(tenant_id)
        if webhook is None:
            if len(self._webhooks) > 10_000:
                self._webhooks.clear()
            webhook = self._webhooks[tenant_id] = Webhook(tenant_signing_secret(self.master_secret, tenant_id))
        timestamp = (at or datetime.now(UTC)).replace(microsecond=0)
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": webhook.sign(webhook_id, timestamp, body.decode()),
        }
