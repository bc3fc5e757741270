"""sv-money's domains stay apart: transfers, holds, cross-region transfers and top-ups
book through the posting core, no domain imports another (the audit and the wallet
included), and the core imports no domain. Read from the source (ast), so an import
inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sv_money

PACKAGE = Path(sv_money.__file__).parent
#: The domains that book money: each depends on the core, never on another of these.
BOOKING = ("transfers", "holds", "crossregion", "topups")
#: Every domain package (the core may import none of them).
DOMAINS = (*BOOKING, "wallet", "audit")
#: The core the booking domains share.
CORE = ("posting", "ledger", "idempotency")


def imported_packages(source: str, module: str) -> set[str]:
    """The ``sv_money`` subpackages ``source`` (the module ``module``) imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module
                base = module.split(".")[: -node.level]
                names = [".".join([*base, *([node.module] if node.module else [])])]
                if not node.module:
                    names = [f"{names[0]}.{alias.name}" for alias in node.names]
            elif node.module:
                names = [node.module]
                if node.module == "sv_money":
                    names = [f"sv_money.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sv_money" and len(parts) > 1:
                found.add(parts[1])
    return found


def imports_of(package: str) -> dict[str, set[str]]:
    """Module path -> the ``sv_money`` subpackages it imports, for every module of ``package``."""
    modules = sorted((PACKAGE / package).rglob("*.py"))
    assert modules, f"no modules in sv_money/{package}"
    result: dict[str, set[str]] = {}
    for path in modules:
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(relative.parts)
        result[str(path.relative_to(PACKAGE))] = imported_packages(path.read_text(), module)
    return result


def test_the_scan_sees_every_form_of_import() -> None:
    source = (
        "import sv_money.holds.service\n"
        "from sv_money.transfers import service\n"
        "from sv_money import crossregion\n"
        "from ..topups.schemas import TopupCreate\n"
        "def later():\n"
        "    from sv_money.wallet.service import WalletService\n"
    )
    found = imported_packages(source, "sv_money.posting.service")
    assert found == {"holds", "transfers", "crossregion", "topups", "wallet"}


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_domain_imports_no_other_domain(domain: str) -> None:
    others = set(DOMAINS) - {domain}
    crossing = {
        module: sorted(imported & others)
        for module, imported in imports_of(domain).items()
        if imported & others
    }
    assert crossing == {}, f"{domain} imports other domains; go through sv_money.posting"


@pytest.mark.parametrize("domain", BOOKING)
def test_a_booking_domain_books_through_the_core(domain: str) -> None:
    # It books through the core (and only the core), which is what keeps it apart.
    assert "posting" in set().union(*imports_of(domain).values())


@pytest.mark.parametrize("core", CORE)
def test_the_core_imports_no_domain(core: str) -> None:
    crossing = {
        module: sorted(imported & set(DOMAINS))
        for module, imported in imports_of(core).items()
        if imported & set(DOMAINS)
    }
    assert crossing == {}, f"the core package {core} imports a domain"
