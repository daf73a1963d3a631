"""What the pipeline's figures share: how they are saved, an empty panel, numbered heat-map cells.

Every PNG is saved without matplotlib's "Software" entry, so its bytes depend on the pixels and
not on the matplotlib version (DVC then sees a change only when the picture changes).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def save(fig: Figure, path: Path | str, dpi: int = 100) -> None:
    """Write ``fig`` as a PNG at ``path`` (parents created), with no version metadata."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, metadata={"Software": None})


def empty(ax: Axes, message: str) -> None:
    """A panel that says why it has nothing to show."""
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def annotate_cells(
    ax: Axes, values: npt.ArrayLike, light_above: float, fontsize: float = 7
) -> None:
    """Write each cell's value (two decimals) on an ``imshow`` heat map: white text where the
    value is above ``light_above`` (a dark cell), black elsewhere."""
    table = np.asarray(values, dtype=float)
    for (i, j), value in np.ndenumerate(table):
        ax.text(
            j,
            i,
            f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=fontsize,
            color="white" if value > light_above else "black",
        )
