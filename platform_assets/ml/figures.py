"""Small charts for asset pages: PNGs inlined into markdown metadata, so the UI shows a picture.

Dagster renders markdown metadata and allows `data:` image sources, so a chart needs no file server
and stays with the materialization that produced it. Charts are kept small (about 20-40 KB).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def figure(width: float = 6.0, height: float = 3.0) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    return fig, fig.add_subplot()


def png_bytes(fig: Figure, dpi: int = 80) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def data_uri(fig: Figure) -> str:
    """The chart as a `data:image/png;base64,...` URI (markdown images, HTML pages)."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig)).decode("ascii")


def markdown_image(fig: Figure, alt: str, caption: str = "") -> str:
    """`![alt](data:image/png;base64,...)`, with an optional caption line under it."""
    return f"![{alt}]({data_uri(fig)})" + (f"\n\n{caption}" if caption else "")


def training_curves(history: Sequence[dict[str, float]]) -> Figure:
    """Validation loss per epoch, one line per ensemble member."""
    fig, ax = figure()
    members = sorted({int(row["member"]) for row in history})
    for member in members:
        rows = [row for row in history if int(row["member"]) == member]
        ax.plot([r["epoch"] for r in rows], [r["val_loss"] for r in rows], marker=".", label=f"member {member}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation log loss")
    ax.legend(fontsize=7)
    return fig


def calibration(tables: dict[str, list[dict[str, float]]]) -> Figure:
    """Observed rate against mean predicted probability per bin, one line per model."""
    fig, ax = figure(4.5, 4.0)
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect")
    for name, rows in tables.items():
        ax.plot([r["mean_predicted"] for r in rows], [r["observed_rate"] for r in rows], marker="o", label=name)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.legend(fontsize=7)
    return fig


def bars(labels: Sequence[str], values: Sequence[float], xlabel: str, threshold: float | None = None) -> Figure:
    """Horizontal bars (e.g. drift score per column), with an optional threshold line."""
    fig, ax = figure(6.0, 0.5 + 0.28 * max(len(labels), 1))
    ax.barh(list(labels), list(values), color="#4f7cac")
    if threshold is not None:
        ax.axvline(threshold, color="#c0392b", linestyle="--", linewidth=1)
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()
    return fig
