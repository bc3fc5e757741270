"""The gateway's layers (doc/architecture.md): which subpackage may import which.

Runtime imports only: ``if TYPE_CHECKING:`` blocks name types for the checker and
mypyc, and load nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gateway_api.config import AuthnSettings, AuthzSettings
from tests.gateway.conftest import start_gateway

PACKAGE = Path(__file__).parents[2] / "app/gateway-api/gateway_api"
#: Below the core; ``admin`` sits above it (its app builds and starts the Gateway).
LAYERS = ("transport", "security", "routing", "upstreams")
#: The core ties the layers together; no layer below it may import it.
CORE = ("gateway", "proxy", "forwarding", "serving", "__main__")


def _runtime_imports(path: Path) -> set[str]:
    """The ``gateway_api`` modules ``path`` imports when it runs."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for orelse in child.orelse:
                    visit(orelse)
                continue
            if isinstance(child, ast.ImportFrom) and child.module:
                if child.module == "gateway_api":
                    found.update(f"gateway_api.{a.name}" for a in child.names)
                elif child.module.startswith("gateway_api."):
                    found.add(child.module)
            elif isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.startswith("gateway_api"))
            visit(child)

    visit(tree)
    return found


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).glob("*.py"))


@pytest.mark.parametrize("layer", list(LAYERS))
def test_no_layer_imports_the_core_or_the_admin_app(layer: str) -> None:
    forbidden = {f"gateway_api.{name}" for name in CORE} | {"gateway_api.admin.app"}
    for path in _modules(layer):
        wrong = _runtime_imports(path) & forbidden
        assert not wrong, f"{path.relative_to(PACKAGE)} imports {sorted(wrong)}"


def test_the_transport_imports_no_other_layer() -> None:
    # Its contract with the rest is transport/exchange.py; problems are shared leaves.
    for path in _modules("transport"):
        for name in _runtime_imports(path):
            assert name.startswith("gateway_api.transport.") or name == "gateway_api.problems", (
                f"transport/{path.name} imports {name}"
            )


@pytest.mark.parametrize("layer", ["", *LAYERS, "admin"])
def test_package_inits_import_nothing(layer: str) -> None:
    # native.activate() imports them before the compiled modules may load.
    tree = ast.parse((PACKAGE / layer / "__init__.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]


def test_only_entry_points_activate_the_native_build() -> None:
    callers = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if "activate()" in p.read_text() and p.name != "native.py"
    )
    assert callers == ["__main__.py"]


async def test_the_gateway_starts_from_its_injected_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The entry point reads the environment once (Settings()); start() must not read it
    # again: a value changed in the environment afterwards does not reach the gateway.
    monkeypatch.setenv("GATEWAY_JWT_ISSUER", "from-the-environment")
    monkeypatch.setenv("GATEWAY_AUTHZ_DOMAIN", "from-the-environment")
    injected = {
        "authn": AuthnSettings(jwt_issuer="injected-issuer"),
        "authz": AuthzSettings(authz_domain="injected-domain", policy_start_wait=0),
    }
    async for gw in start_gateway(tmp_path, {"a": 1}, **injected):
        security = gw.gateway.security
        assert security.authn is not None
        assert security.authz is not None
        assert security.authn.verifier.issuer == "injected-issuer"
        assert security.authz.settings.authz_domain == "injected-domain"
