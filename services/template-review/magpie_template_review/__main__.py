"""``python -m magpie_template_review``: the template review service."""

from __future__ import annotations

from magpie_common.config import Settings
from magpie_common.logs import configure_logging
from magpie_common.service import run_main
from magpie_template_review.app import build
from magpie_template_review.config import SERVICE_NAME


async def main() -> None:
    settings = Settings()
    configure_logging(SERVICE_NAME, settings.log_level)
    components = await build(settings)
    await components.run()


if __name__ == "__main__":
    run_main(main())
