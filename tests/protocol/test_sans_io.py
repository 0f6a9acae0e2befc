"""steun_protocol stays free of I/O: no asyncio, sockets or websocket libraries, directly or pulled in."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import steun_protocol

#: Must not be loaded at all by importing the protocol (checked at run time).
NOT_LOADED = ["asyncio", "websockets", "aiohttp", "ssl", "threading"]
#: Must not be imported by the protocol's own code (checked in the source; some dependencies load
#: ``socket`` for their own purposes, which is not I/O done by the protocol).
NOT_IMPORTED = [*NOT_LOADED, "socket", "selectors", "subprocess", "os", "time"]


def test_importing_the_protocol_loads_no_io_framework() -> None:
    code = (
        "import sys\n"
        "import steun_protocol, steun_protocol.control, steun_protocol.console, steun_protocol.frames\n"
        "import steun_protocol.auth, steun_protocol.inventory\n"
        f"print(','.join(m for m in {NOT_LOADED!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "", f"importing steun_protocol loaded: {out.stdout.strip()}"


def test_protocol_source_imports_no_io_modules() -> None:
    package = pathlib.Path(steun_protocol.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in NOT_IMPORTED]
    assert offenders == []
