"""The figures of ``iommu-stress analyze`` (matplotlib, Agg backend, PNG).

One figure per question, several runs as several lines in each:

=========================== ============================================================
``discovery_schedules.png`` distinct signatures against schedules done
``discovery_time.png``      distinct signatures against running seconds
``throughput.png``          schedules/s and points/s per time bucket
``coverage.png``            distinct op kinds, overlap pairs, lock edges, functions
                            reached, against schedules done
``interleavings.png``       distinct interleaving features (lock edges, alias pairs,
                            overlapping operations, driver functions) against
                            schedules done (stress.search.coverage)
=========================== ============================================================

Every PNG is ``FIGSIZE`` inches at ``DPI``: :data:`WIDTH` x :data:`HEIGHT` pixels.
"""

from __future__ import annotations

import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["FIGSIZE", "DPI", "WIDTH", "HEIGHT", "FIGURES", "figures", "write_pngs"]

FIGSIZE = (8.0, 4.5)
DPI = 100
WIDTH, HEIGHT = int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI)

#: file name -> title
FIGURES = {
    "discovery_schedules.png": "Distinct signatures found vs schedules run",
    "discovery_time.png": "Distinct signatures found vs running time",
    "throughput.png": "Throughput over time",
    "coverage.png": "Coverage growth vs schedules run",
    "interleavings.png": "Interleaving coverage growth vs schedules run",
}

#: the interleaving feature kinds (stress.search.coverage.KINDS) as the plot names them
_INTERLEAVING_TITLES = {"lock": "lock-order edges", "alias": "alias pairs", "overlap": "overlapping operations", "func": "driver functions"}


def _by_run(rows, labels):
    out = {lab: [] for lab in labels}
    for r in rows:
        out.setdefault(r["run"], []).append(r)
    return out


def _empty(ax, what="no data in the log"):
    ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="gray")


def _new(title):
    fig = plt.figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    fig.suptitle(title, fontsize=12)
    return fig


def _discovery(data, x, xlabel, title):
    fig = _new(title)
    ax = fig.add_subplot()
    drawn = False
    for lab, rows in _by_run(data["discovery"], data["labels"]).items():
        if not rows:
            continue
        ax.plot([r[x] for r in rows], [r["signatures"] for r in rows], drawstyle="steps-post", marker="o", markersize=3, label=lab)
        drawn = True
    ax.set_xlabel(xlabel)
    ax.set_ylabel("distinct signatures")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(title="run", loc="lower right")
    else:
        _empty(ax)
    return fig


def _throughput(data):
    fig = _new(FIGURES["throughput.png"] + f" (buckets of {data['throughput']['bucket_s']} s)")
    ax1, ax2 = fig.subplots(1, 2)
    b = data["throughput"]["bucket_s"]
    drawn = False
    for lab, rows in _by_run(data["throughput"]["rows"], data["labels"]).items():
        if not rows:
            continue
        t = [r["t_s"] + b / 2 for r in rows]
        ax1.plot(t, [r["schedules_per_s"] for r in rows], marker="o", markersize=3, label=lab)
        ax2.plot(t, [r["points_per_s"] for r in rows], marker="o", markersize=3, label=lab)
        drawn = True
    ax1.set_ylabel("schedules / s")
    ax2.set_ylabel("scheduling points / s")
    for ax in (ax1, ax2):
        ax.set_xlabel("running time (s)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(title="run", fontsize=8)
        else:
            _empty(ax)
    return fig


def _coverage(data):
    growth = data["coverage"]["growth"]
    metrics = [m for m in ("op kinds", "overlap pairs", "lock edges", "functions") if any(r["metric"] == m for r in growth)]
    return _growth_grid(FIGURES["coverage.png"], data, metrics, {m: [r for r in growth if r["metric"] == m] for m in metrics}, "distinct_items", "distinct {}")


def _interleavings(data):
    growth = data["coverage"]["interleavings_growth"]
    kinds = [k for k in _INTERLEAVING_TITLES if any(r["kind"] == k for r in growth)]
    return _growth_grid(FIGURES["interleavings.png"], data, [_INTERLEAVING_TITLES[k] for k in kinds], {_INTERLEAVING_TITLES[k]: [r for r in growth if r["kind"] == k] for k in kinds}, "features", "{}")


def _growth_grid(title, data, metrics, rows_of, value, label):
    """One small step plot per metric (``rows_of[metric]``: rows with ``run``,
    ``schedules`` and ``value``), every run a line in each."""
    fig = _new(title)
    if not metrics:
        _empty(fig.add_subplot(), "no coverage recorded in the log")
        return fig
    cols = min(2, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    small = rows > 1
    for ax, m in zip(axes, metrics):
        for lab, rows in _by_run(rows_of[m], data["labels"]).items():
            if rows:
                ax.plot([0] + [r["schedules"] for r in rows], [0] + [r[value] for r in rows], drawstyle="steps-post", marker="o", markersize=3, label=lab)
        ax.set_title(label.format(m), fontsize=8 if small else 10)
        ax.set_xlabel("schedules run", fontsize=8 if small else 10)
        ax.set_ylabel("count", fontsize=8 if small else 10)
        ax.tick_params(labelsize=7 if small else 9)
        ax.set_ylim(bottom=0)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(title="run", fontsize=7)
    return fig


def figures(data):
    """``{file name: matplotlib Figure}`` for the collected ``data`` (caller closes them)."""
    return {
        "discovery_schedules.png": _discovery(data, "schedules", "schedules run (count)", FIGURES["discovery_schedules.png"]),
        "discovery_time.png": _discovery(data, "elapsed_s", "running time (s)", FIGURES["discovery_time.png"]),
        "throughput.png": _throughput(data),
        "coverage.png": _coverage(data),
        "interleavings.png": _interleavings(data),
    }


def pngs(data):
    """``{file name: PNG bytes}``."""
    out = {}
    for name, fig in figures(data).items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        plt.close(fig)
        out[name] = buf.getvalue()
    return out


def write_pngs(images, directory):
    """Write ``{name: bytes}`` into ``directory`` (created); returns the paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for name, png in images.items():
        p = os.path.join(directory, name)
        with open(p, "wb") as f:
            f.write(png)
        paths.append(p)
    return paths
