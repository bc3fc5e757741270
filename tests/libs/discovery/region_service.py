"""sv-region, served as every service is, with one test admin allowed to edit regions.

``python -m tests.libs.discovery.region_service`` runs ``sv_region``'s own app and runner
(``SV_REGION_*`` / ``EDGE_*`` configure it); the only difference is that the admin
``u-admin`` holds ``regions:read`` and ``regions:write`` without an auth-rbac process.
"""

from __future__ import annotations

from fastapi import FastAPI

from edgelib.runner import run_service
from edgelib.settings import ServiceSettings
from sv_region.config import Settings
from sv_region.main import MIGRATIONS, create_app
from tests.helpers import grant

ADMIN_ID = "u-admin"


def create_granted_app(settings: ServiceSettings | None = None) -> FastAPI:
    return grant(create_app(settings), ADMIN_ID, "regions:read", "regions:write")


if __name__ == "__main__":
    run_service(Settings, create_granted_app, migrations=MIGRATIONS)
