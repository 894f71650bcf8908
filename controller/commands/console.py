"""The rich console every command prints through: terminal habits in one place.

- On a terminal: the terminal's width; colour and bold unless ``NO_COLOR`` is set to
  anything (https://no-color.org).
- Not on a terminal (CI logs, ``| tee``, ``make demo`` piped): no colour and no wrapping,
  so a long message or table row stays one line that grep and log viewers can read.
  ``TTY_COMPATIBLE=1`` or ``FORCE_COLOR`` make a pipe count as a terminal, as rich (and
  the CI systems that set them) mean them to.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

# Wide enough that no line of ours is ever wrapped; rich pads nothing to this width.
UNWRAPPED_WIDTH = 10_000


def no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def console(stream: TextIO | None = None) -> Console:
    """A console for ``stream`` (default stdout) that follows the rules above."""
    from rich.console import Console

    out = stream if stream is not None else sys.stdout
    # A terminal as rich sees one: a TTY, or TTY_COMPATIBLE=1 / FORCE_COLOR asking for it.
    if Console(file=out).is_terminal:
        if no_color():
            # No colour and no bold either: plain text, at the terminal's width.
            return Console(file=out, no_color=True, color_system=None, highlight=False)
        return Console(file=out, highlight=False)
    return Console(
        file=out,
        width=UNWRAPPED_WIDTH,
        no_color=True,
        color_system=None,
        highlight=False,
        soft_wrap=True,
    )
