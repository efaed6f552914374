"""``python -m magpie_billing``: the billing service (consumers, settlements, internal HTTP API on port 18095)."""

from __future__ import annotations

import asyncio

from magpie_billing.app import SERVICE_NAME, run
from magpie_common.config import Settings
from magpie_common.logs import configure_logging


def main() -> None:
    settings = Settings()
    configure_logging(SERVICE_NAME, settings.log_level)
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
