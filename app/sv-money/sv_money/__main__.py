"""``python -m sv_money [serve|migrate|audit]``."""

from __future__ import annotations

import asyncio
import sys

from edgelib.runner import enter_workspace, run_service
from sv_money.config import Settings
from sv_money.main import MIGRATIONS, create_app


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["audit"]:
        from sv_money.audit.command import audit_command

        enter_workspace()
        raise SystemExit(asyncio.run(audit_command(args[1:])))
    run_service(Settings, create_app, migrations=MIGRATIONS, argv=args)


if __name__ == "__main__":
    main()
