"""``python -m auth_rbac [serve|migrate]``."""

from auth_rbac.config import Settings
from auth_rbac.main import MIGRATIONS, create_app
from edgelib.runner import run_service


def main() -> None:
    run_service(Settings, create_app, migrations=MIGRATIONS)


if __name__ == "__main__":
    main()
