"""Execute notebooks in place (`make notebooks`), so stored outputs are fresh and deterministic."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lessons.toolkit.exercises import sync_notebooks


def execute_in_place(path: Path, timeout: int = 300) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        # Per-cell timestamps would change the file on every run for no reader's benefit.
        record_timing=False,
    )
    client.execute()
    nbformat.write(notebook, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lessons.toolkit.notebooks")
    parser.add_argument("command", choices=["execute"])
    parser.add_argument("paths", nargs="+", type=Path)
    args = parser.parse_args(argv)
    # Exercise stubs come from solutions/: refresh them (in these notebooks) before the outputs
    # are recorded.
    sync_notebooks(paths=args.paths)
    for path in args.paths:
        print(f"executing {path} ...", flush=True)
        execute_in_place(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
