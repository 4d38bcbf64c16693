"""Fig. 3-like pictures of the toy lab, drawn with matplotlib (imported on first use).

A panel shows D's confidence over the square [-e, e]^2 (e = the data set's `extent`) as a colour map with its
colour bar, a sample of the data (white) and the generated points (red), with x and y axes in data units.
"""

from __future__ import annotations

import numpy as np

from dnnlib.atomic import atomic_path

DATA_COLOR = "white"
SAMPLE_COLOR = "red"


def grid_points(size: int, extent: float) -> np.ndarray:
    """Centres [size * size, 2] of a size x size pixel grid over [-extent, extent]^2, row-major, y pointing up."""
    axis = (np.arange(size) + 0.5) / size * 2 * extent - extent
    xs, ys = np.meshgrid(axis, axis[::-1])
    return np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float32)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "the toy lab's figures need matplotlib: pip install matplotlib (or the [plots] extra)"
        ) from None
    return plt


def draw_panel(ax, confidence: np.ndarray, extent: float, data: np.ndarray, samples: np.ndarray, title: str = ""):
    """Draw one panel on a matplotlib Axes: `confidence` [S, S] in [0, 1] (rows top to bottom, as from
    `grid_points`), data and sample points [N, 2]. Returns the colour map's image (for a colour bar)."""
    image = ax.imshow(
        confidence, extent=(-extent, extent, -extent, extent), origin="upper", cmap="viridis", vmin=0, vmax=1
    )
    ax.scatter(data[:, 0], data[:, 1], s=2, c=DATA_COLOR, linewidths=0, label="data")
    ax.scatter(samples[:, 0], samples[:, 1], s=2, c=SAMPLE_COLOR, linewidths=0, label="generated")
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)
    if title:
        ax.set_title(title, fontsize=8)
    return image


def _save(fig, path: str) -> None:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)


def save_run_figure(
    path: str, confidence: np.ndarray, extent: float, data: np.ndarray, samples: np.ndarray, title: str
) -> None:
    """One run's panel with axes, a legend and a colour bar for D's confidence, as a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4), layout="constrained")
    image = draw_panel(ax, confidence, extent, data, samples, title)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend(loc="upper right", fontsize=7, markerscale=4, facecolor="lightgrey")
    fig.colorbar(image, ax=ax, label="D's confidence (real = 1)")
    _save(fig, path)
    plt.close(fig)


def save_grid_figure(
    path: str,
    panels: list[list[tuple[np.ndarray, np.ndarray] | None]],
    row_labels: list[str],
    col_labels: list[str],
    extent: float,
    data: np.ndarray,
    title: str,
) -> None:
    """A grid of panels: `panels[i][j]` = (confidence map, samples) of row i (objective) and column j (variant),
    None for a cell that did not run (left blank and labelled); one legend and one colour bar for the figure."""
    plt = _pyplot()
    rows, cols = len(row_labels), len(col_labels)
    fig, axes = plt.subplots(
        rows, cols, figsize=(2.3 * cols + 1.2, 2.3 * rows + 0.8), squeeze=False, layout="constrained"
    )
    image = None
    for i in range(rows):
        for j in range(cols):
            ax = axes[i][j]
            cell = panels[i][j]
            if cell is None:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, fontsize=8)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                image = draw_panel(ax, cell[0], extent, data, cell[1])
            if i == 0:
                ax.set_title(col_labels[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{row_labels[i]}\ny", fontsize=9)
            if i == rows - 1:
                ax.set_xlabel("x", fontsize=8)
    handles, labels = next(((h, lab) for h, lab in (ax.get_legend_handles_labels() for ax in axes.flat) if h), ([], []))
    if handles:
        fig.legend(
            handles, labels, loc="outside lower center", ncols=2, fontsize=8, markerscale=4, facecolor="lightgrey"
        )
    if image is not None:
        fig.colorbar(image, ax=axes, label="D's confidence (real = 1)", shrink=0.8)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
    plt.close(fig)
