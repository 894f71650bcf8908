"""Refresh the field table in ``docs/argo.md`` from ``controller.argo.fields``.

Run by ``make crds`` (next to the CRD and reference generators); the prose around the
table is written by hand, the table between the markers never is. A test compares.
"""

from __future__ import annotations

import sys
from pathlib import Path

from controller.argo.fields import markdown_table

BEGIN = "<!-- table: generated from controller/argo/fields.py -->"
END = "<!-- end of table -->"


def refresh(text: str) -> str:
    """``text`` with the table between BEGIN and END replaced by the current one."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"docs/argo.md needs the markers {BEGIN} and {END}")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{markdown_table().strip()}\n\n{END}{tail}"


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "docs/argo.md")
    path.write_text(refresh(path.read_text()))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
