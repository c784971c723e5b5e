"""PNG plots of an evaluation run (matplotlib, Agg backend): training curves and metric bars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

X_KEYS = ("epoch", "iteration", "step")


def plot_training_log(log: list[dict[str, Any]], path: str | Path, title: str = "") -> Path | None:
    """One panel per numeric key of `model.training_log` (loss, validation metrics) against the epoch
    (or iteration / step, else the entry number).

    Returns None (and writes nothing) when the log has no numeric series.
    """
    series = _series(log)
    if not series:
        return None
    x_key = next((k for k in X_KEYS if all(_is_number(e.get(k)) for e in log)), None)
    x = [float(e[x_key]) if x_key else float(i + 1) for i, e in enumerate(log)]
    fig, axes = plt.subplots(len(series), 1, figsize=(6, 2.2 * len(series)), sharex=True, squeeze=False)
    for ax, (name, values) in zip(axes[:, 0], series.items(), strict=True):
        pts = [(xi, v) for xi, v in zip(x, values, strict=True) if v is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3)
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel(x_key or "entry")
    fig.suptitle(title or "training log")
    return _save(fig, path)


METRIC_GROUPS = (("accuracy", ()), ("beyond accuracy", ("Coverage", "PopularityPct", "Diversity")),
                 ("novelty (bits)", ("Novelty",)))


def plot_metrics(metrics: dict[str, float | None], path: str | Path, title: str = "") -> Path:
    """Horizontal bars of the metric values, one panel per scale (accuracy, beyond accuracy, novelty)."""
    groups: dict[str, list[tuple[str, float]]] = {name: [] for name, _ in METRIC_GROUPS}
    for key, value in metrics.items():
        if value is None or value != value:
            continue
        group = next((g for g, prefixes in METRIC_GROUPS if key.split("@")[0] in prefixes), "accuracy")
        groups[group].append((key, float(value)))
    panels = [(g, items) for g, items in groups.items() if items]
    heights = [0.3 * len(items) + 0.8 for _, items in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(6, sum(heights) + 0.6), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    for ax, (group, items) in zip(axes[:, 0], panels, strict=True):
        ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color="tab:blue")
        for i, (_, v) in enumerate(items[::-1]):
            ax.text(v, i, f" {v:.4f}", va="center", fontsize=7)
        ax.set_title(group, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.15)
    fig.suptitle(title or "metrics")
    return _save(fig, path)


def plot_folds(per_fold: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """RMSE and MAE per fold, side by side."""
    names = [str(f["fold"]) for f in per_fold]
    fig, ax = plt.subplots(figsize=(6, 3))
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], [f["RMSE"] for f in per_fold], width=0.4, label="RMSE")
    ax.bar([x + 0.2 for x in xs], [f["MAE"] for f in per_fold], width=0.4, label="MAE")
    ax.set_xticks(list(xs), names)
    ax.legend()
    ax.set_title(title or "per fold")
    return _save(fig, path)


def write_plots(doc: dict[str, Any], directory: str | Path) -> list[Path]:
    """Every plot that applies to an evaluation document; returns the written files."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    title = f"{doc['model']} / {doc['protocol']}"
    out = [plot_metrics(doc["metrics"], directory / "metrics.png", title)]
    last_fold = " (last fold)" if doc.get("per_fold") else ""
    curve = plot_training_log(doc.get("training_log") or [], directory / "training.png", title + last_fold)
    if curve is not None:
        out.append(curve)
    if doc.get("per_fold"):
        out.append(plot_folds(doc["per_fold"], directory / "folds.png", title))
    return out


def _series(log: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    names: list[str] = []
    for entry in log:
        for key, value in entry.items():
            timing = key.endswith(("seconds", "_time", "_s")) or key in ("time", "seconds")
            if key not in X_KEYS and not timing and key not in names and _is_number(value):
                names.append(key)
    return {n: [float(e[n]) if _is_number(e.get(n)) else None for e in log] for n in names}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
