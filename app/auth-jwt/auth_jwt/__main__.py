"""``python -m auth_jwt [serve|migrate]``."""

from edgelib.runner import run_service
from auth_jwt.config import Settings
from auth_jwt.main import MIGRATIONS, create_app


def main() -> None:
    run_service(Settings, create_app, migrations=MIGRATIONS)


if __name__ == "__main__":
    main()
