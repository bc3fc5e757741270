"""``python -m sv_notice [serve|migrate]``."""

from edgelib.runner import run_service
from sv_notice.config import Settings
from sv_notice.main import MIGRATIONS, create_app


def main() -> None:
    run_service(Settings, create_app, migrations=MIGRATIONS)


if __name__ == "__main__":
    main()
