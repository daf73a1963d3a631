"""The figure helpers every plotting module uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from artist_id import figures


def test_cells_carry_their_values_in_a_colour_readable_on_the_cell() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    ax.imshow([[0.1, 0.9], [0.6, 0.61]], vmin=0, vmax=1)
    figures.annotate_cells(ax, [[0.1, 0.9], [0.6, 0.61]], light_above=0.6)
    found = {(t.get_position(), t.get_text(), t.get_color()) for t in ax.texts}
    # (x, y) = (column, row); white only strictly above the threshold
    assert found == {
        ((0, 0), "0.10", "black"),
        ((1, 0), "0.90", "white"),
        ((0, 1), "0.60", "black"),
        ((1, 1), "0.61", "white"),
    }


def test_saved_png_has_no_version_metadata_and_same_pixels_give_same_bytes(tmp_path: Path) -> None:
    def draw(path: Path) -> bytes:
        fig = Figure(figsize=(2, 1))
        figures.empty(fig.add_subplot(), "nothing here")
        figures.save(fig, path, dpi=50)
        return path.read_bytes()

    first = draw(tmp_path / "a" / "b" / "plot.png")  # parents are created
    assert draw(tmp_path / "again.png") == first
    with Image.open(tmp_path / "again.png") as im:
        assert im.size == (100, 50)  # 2 x 1 inches at 50 dpi
        assert "Software" not in im.info
    assert np.asarray(Image.open(tmp_path / "again.png")).std() > 0  # the message was drawn
