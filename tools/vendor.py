"""Shared by the vendoring tools: exact npm releases checked against their pins, and the
command line (``build`` re-vendors, then both ``build`` and ``check`` check)."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def run(*args: str, cwd: Path) -> str:
    """``npm <args>``'s stdout; a one-line exit when npm is missing or fails."""
    try:
        proc = subprocess.run(["npm", *args], cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise SystemExit("npm is not installed: apt-get install -y npm") from exc
    except subprocess.CalledProcessError as exc:
        raise SystemExit(f"npm {' '.join(args)} failed:\n{exc.stderr}") from exc
    return proc.stdout


def pack(name: str, version: str, integrity: str, work: Path) -> Path:
    """The tarball of ``name@version`` in ``work``, after checking npm's ``dist.integrity``."""
    out = json.loads(run("pack", f"{name}@{version}", "--json", cwd=work))
    tarball = work / out[0]["filename"]
    algo, _, expected = integrity.partition("-")
    digest = base64.b64encode(hashlib.new(algo, tarball.read_bytes()).digest()).decode()
    if digest != expected:
        raise SystemExit(f"{tarball.name}: integrity {algo}-{digest} != pinned {integrity}")
    return tarball


def main(
    argv: list[str] | None,
    description: str,
    build: Callable[[], None],
    check: Callable[[], list[str]],
    label: str,
) -> int:
    """``build`` (then check) or ``check``: the problems on stderr, exit status 1 if any."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("command", choices=["build", "check"])
    args = parser.parse_args(argv)
    if args.command == "build":
        build()
    problems = check()
    for p in problems:
        print(f"{label}: {p}", file=sys.stderr)
    return 1 if problems else 0
