"""Helpers for tests (this service's and the cross-service ones): sample device rows and an in-process server.

``serve(settings, config, worker=...)`` runs the service as ``__main__`` does (HTTP on a real socket, optionally the
RECIPIENTS consumer loop), minus the signal handling, and yields a :class:`Running` with an ``httpx`` client.
The sample rows are CSV cells after ``mobile`` for ``DEVICE_HEADER``; the comment says what the capability engine
makes of each with every vendor approved.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import httpx

from magpie_common.config import Settings
from magpie_common.service import http_server
from magpie_number_resolver.app import Components, build
from magpie_number_resolver.config import ResolverConfig

DEVICE_HEADER = (
    "mobile,brand,model,os_name,os_version,app_version,android_version,plugin_version,"
    "quick_app_engine_version,smart_service_switch,rich_media_switch"
)
CAPABLE_BUTTONS = "HUAWEI,Mate 40 Pro,HarmonyOS,3.0,11.1.1.400,,,,,"  # SMART with coloured buttons
CAPABLE_RENDER = "HUAWEI,Mate 40 Pro,HarmonyOS,3.0,11.1.0.551,,,,,"  # SMART
APP_TOO_OLD = "HUAWEI,Mate 40 Pro,HarmonyOS,3.0,10.0.0.1,,,,,"  # APP_TOO_OLD
OS_TOO_OLD = "HUAWEI,Mate 40 Pro,EMUI,8.0,11.1.1.400,,,,,"  # OS_TOO_OLD
UNKNOWN_MODEL = "HUAWEI,Nokia 3310,HarmonyOS,3.0,11.1.1.400,,,,,"  # UNKNOWN_MODEL
VIVO_SWITCH_OFF = "vivo,X60,OriginOS,1.0,7.0.0,11,,,off,on"  # SWITCH_OFF
VIVO_CAPABLE = "vivo,X60,OriginOS,1.0,7.0.0,11,,,on,on"  # SMART (VENDOR_NOT_APPROVED without VIVO)


def device_csv(rows: dict[str, str]) -> bytes:
    """A device import body: ``{mobile: sample row}``."""
    return ("\n".join([DEVICE_HEADER, *(f"{mobile},{row}" for mobile, row in rows.items())]) + "\n").encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Running:
    components: Components
    base_url: str
    client: httpx.AsyncClient


@contextlib.asynccontextmanager
async def serve(settings: Settings, config: ResolverConfig, *, worker: bool) -> AsyncIterator[Running]:
    port = free_port()
    components = await build(settings, replace(config, http_port=port, worker=worker))
    await components.start()
    await components.hot.ensure()
    server = http_server(components.app, "127.0.0.1", port)
    tasks = [asyncio.create_task(server.serve())]
    for loop in components.loops:
        tasks.append(asyncio.create_task(loop.run()))
    while not server.started:
        if tasks[0].done():
            tasks[0].result()
        await asyncio.sleep(0.02)
    client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120)
    try:
        yield Running(components, f"http://127.0.0.1:{port}", client)
    finally:
        await client.aclose()
        for loop in components.loops:
            loop.stop()
        server.should_exit = True
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        await components.close()
