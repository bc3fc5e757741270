"""``python -m sv_region [serve|migrate]``."""

from edgelib.runner import run_service
from sv_region.config import Settings
from sv_region.main import MIGRATIONS, create_app


def main() -> None:
    run_service(Settings, create_app, migrations=MIGRATIONS)


if __name__ == "__main__":
    main()
