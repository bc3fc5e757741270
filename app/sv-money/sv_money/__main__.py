"""``python -m sv_money [serve|migrate]``."""

from edgelib.runner import run_service
from sv_money.config import Settings
from sv_money.main import MIGRATIONS, create_app


def main() -> None:
    run_service(Settings, create_app, migrations=MIGRATIONS)


if __name__ == "__main__":
    main()
