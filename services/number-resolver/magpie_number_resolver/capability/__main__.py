"""``python -m magpie_number_resolver.capability [n]``: print the classification micro-benchmark figures."""

from __future__ import annotations

import sys

from .bench import bench


def main(argv: list[str]) -> None:
    count = int(argv[1]) if len(argv) > 1 else 200_000
    print(f"device-verdict cache on:  {bench(count):,.0f} numbers/s")
    print(f"device-verdict cache off: {bench(count, cache_size=0):,.0f} numbers/s")


if __name__ == "__main__":
    main(sys.argv)
