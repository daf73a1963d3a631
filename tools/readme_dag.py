"""Put the output of `dvc dag --md` (a Mermaid graph GitHub draws) into README.md.

The block sits between two marker comments; `make readme-dag` rewrites it and
tests/unit/test_readme.py checks that it matches the pipeline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN = "<!-- dvc dag --md: begin (make readme-dag rewrites this block) -->"
END = "<!-- dvc dag --md: end -->"


def dag_markdown() -> str:
    dvc = Path(sys.executable).parent / "dvc"
    proc = subprocess.run(
        [str(dvc), "dag", "--md"], cwd=ROOT, check=True, capture_output=True, text=True
    )
    return proc.stdout.strip() + "\n"


def block(text: str) -> str:
    """The current content between the markers."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def main() -> int:
    text = README.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    README.write_text(text[:start] + "\n" + dag_markdown() + text[end:], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
