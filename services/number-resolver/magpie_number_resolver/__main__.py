"""``python -m magpie_number_resolver``: the consumer loops and the internal API (port 18092) in one process."""

from __future__ import annotations

from collections.abc import Awaitable

from magpie_common.config import Settings
from magpie_common.logs import configure_logging
from magpie_common.service import Service, http_server, run_main
from magpie_number_resolver.app import build
from magpie_number_resolver.config import SERVICE_NAME, ResolverConfig


async def run(settings: Settings, config: ResolverConfig) -> None:
    components = await build(settings, config)
    await components.start()
    service = Service(SERVICE_NAME, host=config.http_host, port=config.http_port)
    server = http_server(components.app, config.http_host, config.http_port)

    def stop_server() -> None:
        server.should_exit = True

    service.stop_callbacks.append(stop_server)
    tasks: list[Awaitable[None]] = [server.serve()]
    for loop in components.loops:
        service.stop_callbacks.append(loop.stop)
        tasks.append(loop.run())
    try:
        # The FastAPI app serves the ops routes itself (/metrics, /healthz, /readyz).
        await service.run(tasks, ops_server=False)
    finally:
        await components.close()


def main() -> None:
    settings = Settings()
    configure_logging(SERVICE_NAME, settings.log_level)
    run_main(run(settings, ResolverConfig.from_env()))


if __name__ == "__main__":
    main()
