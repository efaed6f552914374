"""What every endpoint needs: settings, database collections, the event producer; and event envelopes."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from magpie.v1 import common_pb2
from magpie_common.config import Settings
from magpie_common.ids import now_ms
from magpie_common.kafka import EventProducer
from magpie_gateway.config import GatewayConfig
from magpie_gateway.db import Collections
from magpie_gateway.files import FileStore
from magpie_gateway.tenants import CredentialCache, TenantStore

PRODUCER_NAME = "gateway"


@dataclass
class GatewayContext:
    settings: Settings
    config: GatewayConfig
    collections: Collections
    producer: EventProducer
    tenants: TenantStore
    credentials: CredentialCache

    @property
    def files(self) -> FileStore:
        """Uploaded files of the tenants (GridFS in the gateway's database)."""
        return FileStore(self.collections.database)


def get_context(request: Request) -> GatewayContext:
    """FastAPI dependency: the gateway context stored on the application."""
    context: GatewayContext = request.app.state.gateway
    return context


def request_id(request: Request) -> str:
    value = getattr(request.state, "request_id", None)
    return value if isinstance(value, str) else ""


def event_meta(event_id: str, tenant_id: str, trace_id: str = "") -> common_pb2.EventMeta:
    return common_pb2.EventMeta(
        event_id=event_id,
        tenant_id=tenant_id,
        occurred_at_ms=now_ms(),
        producer=PRODUCER_NAME,
        trace_id=trace_id,
    )
