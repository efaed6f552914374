"""``python -m magpie_dispatcher``: the sending side and the customer receipts in one process
(``MAGPIE_DISPATCHER_ROLES=send,receipts``, either alone for separate deployments; add ``vms`` for video SMS);
ops endpoints on port 18094."""

from __future__ import annotations

import logging

from magpie_common.config import Settings
from magpie_common.logs import configure_logging
from magpie_common.service import Service, run_main
from magpie_dispatcher.config import SERVICE_NAME, DispatcherConfig
from magpie_dispatcher.wiring import build

log = logging.getLogger(__name__)


async def run(settings: Settings, config: DispatcherConfig, service: Service | None = None) -> None:
    """Run the configured roles until ``service`` is asked to stop (SIGTERM / SIGINT), then drain and close."""
    components = await build(settings, config)
    service = service or Service(SERVICE_NAME, host=config.http_host, port=config.http_port)
    service.readiness_checks.update(components.readiness_checks())
    service.stop_callbacks.append(components.stop)
    log.info(
        "dispatcher starting",
        extra={
            "roles": sorted(config.roles),
            "smsc": config.smsc.label,
            "carrier_smsc": {carrier: smsc.label for carrier, smsc in config.carrier_smsc.items()},
            "port": config.http_port,
        },
    )
    try:
        await service.run(components.workers())
    finally:
        await components.close()


def main() -> None:
    settings = Settings()
    configure_logging(SERVICE_NAME, settings.log_level)
    run_main(run(settings, DispatcherConfig.from_env()))


if __name__ == "__main__":
    main()
