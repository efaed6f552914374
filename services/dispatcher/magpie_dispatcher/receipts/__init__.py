"""Customer receipt sender: delivery (sms) and resolution (shortchain) receipts and AIM template status POSTed to
the tenants' callbacks.

``build_receipts(settings)`` returns ``ReceiptsComponents``; run ``components.workers()`` in the dispatcher
process, ``components.stop()`` on shutdown, then ``await components.close()``; ``await components.readiness()``
reports the consumers, the sender and MongoDB. Module guide: ``registry`` (callback URLs), ``producers`` (events
-> outbox), ``outbox`` (MongoDB store), ``sender`` (POSTs, retries), ``payloads`` (wire format),
``destination`` (SSRF guard), ``signing`` (Standard Webhooks), ``config`` (environment variables),
``template_status`` (AIM template-status callbacks, url_type 1).
"""

from magpie_dispatcher.receipts.config import ReceiptsConfig
from magpie_dispatcher.receipts.signing import tenant_signing_secret
from magpie_dispatcher.receipts.wiring import ReceiptsComponents, build_receipts

__all__ = ["ReceiptsComponents", "ReceiptsConfig", "build_receipts", "tenant_signing_secret"]
