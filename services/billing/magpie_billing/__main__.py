"""``python -m magpie_billing``: the billing service (consumers, settlements, internal HTTP API on port 18095)."""

from __future__ import annotations

from magpie_billing.app import SERVICE_NAME, run
from magpie_common.config import Settings
from magpie_common.logs import configure_logging
from magpie_common.service import run_main


def main() -> None:
    settings = Settings()
    configure_logging(SERVICE_NAME, settings.log_level)
    run_main(run(settings))


if __name__ == "__main__":
    main()
