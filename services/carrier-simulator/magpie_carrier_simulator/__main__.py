"""``python -m magpie_carrier_simulator [options]``: run the simulated SMSC until SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence

from magpie_carrier_simulator.config import build_parser, config_from_args
from magpie_carrier_simulator.simulator import CarrierSimulator
from magpie_common.logs import configure_logging
from magpie_common.service import run_main


async def run(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    configure_logging("carrier-simulator", args.log_level)
    simulator = CarrierSimulator(config_from_args(args))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await simulator.start()
    try:
        await stop.wait()
    finally:
        await simulator.stop()


def main(argv: Sequence[str] | None = None) -> None:
    try:
        run_main(run(argv))
    except ValueError as exc:  # a bad option value
        print(f"carrier-simulator: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
