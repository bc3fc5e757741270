"""``python -m sv_money audit``: audit this region's ledger from the command line.

Prints the report as JSON; exits 0 when the ledger is clean, 1 when not.
"""

from __future__ import annotations

import argparse
import sys

from edgelib.app import default_database_url, default_schema
from edgelib.db import Database
from edgelib.signing import ServiceSigner
from sv_money.config import Settings
from sv_money.main import open_services


async def audit_command(argv: list[str], settings: Settings | None = None) -> int:
    """Run the audit with ``settings`` (from the environment when None); the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m sv_money audit", description="Audit this region's ledger."
    )
    parser.add_argument(
        "--region", help="the region to audit (default: SV_MONEY_REGION)", default=None
    )
    args = parser.parse_args(argv)
    if settings is None:
        settings = Settings() if args.region is None else Settings(region=args.region)
    database = Database(
        settings.database_url or default_database_url(settings),
        schema=settings.database_schema or default_schema(settings),
    )
    signer = ServiceSigner(settings.service_name, settings.keyring())
    try:
        async with open_services(settings, database, signer) as services:
            report = await services.audit.run()
    finally:
        await database.dispose()
    sys.stdout.write(report.model_dump_json(indent=2) + "\n")
    return 0 if report.ok else 1
