"""``python -m sv_config [serve|migrate]``."""

from edgelib.runner import run_service
from sv_config.config import Settings
from sv_config.main import MIGRATIONS, create_app


def main() -> None:
    run_service(Settings, create_app, migrations=MIGRATIONS)


if __name__ == "__main__":
    main()
