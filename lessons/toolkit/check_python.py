"""Refuse, with a way out, a Python the pinned requirements cannot install on.

Run by `make` before it creates .venv (with the Python that would create it, before anything
is installed, so it uses the standard library only). The lock pins soupsieve 4.1.3 (through
beautifulsoup4, for nbconvert), which refuses Python 3.11.0-3.11.4: their `re` module has a bug
it works around only from 3.11.5. Debian 12 ships 3.11.2.
"""

from __future__ import annotations

import sys

MINIMUM = (3, 11, 5)


def problem(version: tuple[int, ...]) -> str | None:
    if tuple(version[:3]) >= MINIMUM:
        return None
    found = ".".join(map(str, version[:3]))
    return (
        f"Python {found} is too old for this workbook: it needs 3.11.5 or newer (the pinned "
        "soupsieve refuses earlier 3.11 releases, whose `re` module has a bug).\n"
        "Install a newer Python (for example python3.12 from your package manager, pyenv or "
        "python.org), then run: make lab PYTHON=python3.12"
    )


if __name__ == "__main__":
    message = problem(sys.version_info)
    if message:
        print(message, file=sys.stderr)
        sys.exit(1)
