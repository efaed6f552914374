"""``python -m magpie_shortlink``: the minting loop and the edge in one process (``MAGPIE_SHORTLINK_ROLES``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from magpie_common.config import Settings
from magpie_common.logs import configure_logging
from magpie_common.service import Service, http_server, run_main
from magpie_shortlink.config import SERVICE_NAME, ShortlinkConfig
from magpie_shortlink.wiring import build

log = logging.getLogger(__name__)


async def run(settings: Settings, config: ShortlinkConfig, service: Service | None = None) -> None:
    """Run the configured roles until ``service`` is asked to stop (SIGTERM / SIGINT), then drain and close."""
    components = await build(settings, config)
    service = service or Service(SERVICE_NAME, host=config.http_host, port=config.http_port)
    service.readiness_checks.update(components.readiness_checks())
    tasks: list[Awaitable[None]] = []
    try:
        if components.minter is not None:
            loop = components.consumer_loop()
            tasks.append(loop.run())
            service.stop_callbacks.append(loop.stop)
        if components.app is not None:
            # The edge serves the ops routes itself, on the same port.
            server = http_server(components.app, config.http_host, config.http_port)
            tasks.append(server.serve())
            service.stop_callbacks.append(lambda: setattr(server, "should_exit", True))
        log.info(
            "shortlink starting",
            extra={"roles": sorted(config.roles), "host": config.http_host, "port": config.http_port},
        )
        await service.run(tasks, ops_server=components.app is None)
    finally:
        await components.close()


def main() -> None:
    settings = Settings()
    configure_logging(SERVICE_NAME, settings.log_level)
    run_main(run(settings, ShortlinkConfig.from_env()))


if __name__ == "__main__":
    main()
