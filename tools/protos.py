"""``make protos``: the Python code generated from ``protos/``, reproducibly.

Each entry of :data:`TARGETS` is a ``.proto`` under ``protos/`` and the package folder its
code goes to. ``grpc_tools.protoc`` (grpcio-tools, pinned exactly in pyproject.toml, so
the same version makes the same bytes everywhere) writes ``<name>_pb2.py``, ``.pyi`` and
``<name>_pb2_grpc.py``; the service module's import of the messages is made relative, so
the generated folder is an ordinary subpackage of the service. ``--check`` regenerates
into a temporary folder and fails when the committed files differ
(tests/deploy/test_protos.py runs it).
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.metadata
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTOS = ROOT / "protos"
#: proto file (under protos/) -> the folder its generated modules live in.
TARGETS = {
    "edge/money/v1/wallet.proto": ROOT / "app/sv-money/sv_money/rpc/gen",
}
HEADER = "# Generated from protos/{proto} by make protos (grpcio-tools {version}) — do not edit.\n"


def generate(proto: str, out: Path) -> list[Path]:
    """Write the modules of ``proto`` into ``out``; the files written."""
    from grpc_tools import protoc  # dev dependency: only the generator needs it

    stem = Path(proto).stem
    with tempfile.TemporaryDirectory() as tmp:
        include = Path(protoc.__file__).parent / "_proto"
        code = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTOS}",
                f"-I{include}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(PROTOS / proto),
            ]
        )
        if code != 0:
            raise SystemExit(f"protoc failed on {proto}")
        made = Path(tmp) / Path(proto).parent
        version = importlib.metadata.version("grpcio-tools")
        out.mkdir(parents=True, exist_ok=True)
        written = []
        module = ".".join(Path(proto).with_suffix("").parts) + "_pb2"
        for name in (f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"):
            text = (made / name).read_text()
            # `from edge.money.v1 import wallet_pb2 as ...` -> `from . import wallet_pb2 as ...`
            package = module.rpartition(".")[0]
            text = re.sub(
                rf"^from {re.escape(package)} import ", "from . import ", text, flags=re.M
            )
            target = out / name
            header = HEADER.format(proto=proto, version=version)
            # Generated code is not type-checked (the service module is untyped, the stubs
            # subclass protobuf's untyped Message); said in the files, not in a
            # [[tool.mypy.overrides]], which mypyc's runs would find unused.
            header += "# mypy: ignore-errors\n"
            target.write_text(header + text)
            written.append(target)
        init = out / "__init__.py"
        if not init.exists():
            init.write_text('"""Generated from protos/ by make protos (tools/protos.py)."""\n')
        written.append(init)
        return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail when the files are stale")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for proto, out in TARGETS.items():
        if not args.check:
            for path in generate(proto, out):
                sys.stdout.write(f"wrote {path.relative_to(ROOT)}\n")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            for fresh in generate(proto, Path(tmp)):
                committed = out / fresh.name
                if not committed.exists() or not filecmp.cmp(fresh, committed, shallow=False):
                    stale.append(str(committed.relative_to(ROOT)))
    if stale:
        sys.stderr.write("stale generated code (run make protos):\n  " + "\n  ".join(stale) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
