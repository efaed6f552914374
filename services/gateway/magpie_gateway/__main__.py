"""``python -m magpie_gateway``: the REST API (with /metrics, /healthz, /readyz and /docs) on MAGPIE_HTTP_PORT,
plus the review and projector consumer loops; drains on SIGTERM/SIGINT."""

from __future__ import annotations

import logging

from magpie_common.config import Settings
from magpie_common.logs import configure_logging
from magpie_common.service import Service, http_server, run_main
from magpie_gateway.config import GatewayConfig
from magpie_gateway.wiring import build

log = logging.getLogger("magpie_gateway")


async def run(settings: Settings, config: GatewayConfig) -> None:
    gateway = await build(settings, config)
    server = http_server(gateway.app, config.http_host, config.http_port)
    service = Service("gateway", host=config.http_host, port=0)

    def stop_http() -> None:
        server.should_exit = True

    service.stop_callbacks.extend([stop_http, gateway.stop_loops])
    log.info("gateway starting", extra={"host": config.http_host, "port": config.http_port})
    try:
        await service.run([server.serve(), *(loop.run() for loop in gateway.loops)], ops_server=False)
    finally:
        await gateway.close()


def main() -> None:
    settings = Settings()
    configure_logging("gateway", settings.log_level)
    run_main(run(settings, GatewayConfig()))


if __name__ == "__main__":
    main()
