"""``python -m sv_log [serve|migrate]``."""

from edgelib.runner import run_service
from sv_log.config import Settings
from sv_log.main import MIGRATIONS, create_app


def main() -> None:
    run_service(Settings, create_app, migrations=MIGRATIONS)


if __name__ == "__main__":
    main()
