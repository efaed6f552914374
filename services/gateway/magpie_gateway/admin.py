"""Operator commands against the gateway's database (configured like the service, from the environment).

python -m magpie_gateway.admin create-tenant --name NAME   -> {"tenant_id", "access_key", "secret_key", ...}
python -m magpie_gateway.admin list-tenants                -> tenants with their access keys (no secrets)
python -m magpie_gateway.admin disable-key ACCESS_KEY      (enable-key likewise)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from magpie_common.config import Settings
from magpie_common.storage import mongo_client, service_db
from magpie_gateway.db import Collections, ensure_indexes
from magpie_gateway.tenants import TenantStore


async def _run(args: argparse.Namespace, settings: Settings) -> tuple[int, Any]:
    client = mongo_client(settings)
    try:
        collections = Collections.of(service_db(client, settings, "gateway"))
        await ensure_indexes(collections)
        store = TenantStore(collections)
        if args.command == "create-tenant":
            tenant = await store.create_tenant(args.name)
            return 0, tenant.as_json()
        if args.command == "list-tenants":
            return 0, await store.list_tenants()
        enabled = args.command == "enable-key"
        if not await store.set_enabled(args.access_key, enabled):
            return 1, {"error": f"access key {args.access_key} not found"}
        return 0, {"access_key": args.access_key, "enabled": enabled}
    finally:
        await client.close()


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m magpie_gateway.admin", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-tenant", help="create a tenant and its first AK/SK pair")
    create.add_argument("--name", required=True)
    commands.add_parser("list-tenants", help="list tenants and their access keys")
    for name in ("disable-key", "enable-key"):
        command = commands.add_parser(name, help=f"{name.split('-')[0]} an access key")
        command.add_argument("access_key")
    args = parser.parse_args(argv)
    try:
        code, output = asyncio.run(_run(args, settings or Settings()))
    except ValueError as exc:
        code, output = 2, {"error": str(exc)}
    print(json.dumps(output, ensure_ascii=False))
    return code


if __name__ == "__main__":
    sys.exit(main())
