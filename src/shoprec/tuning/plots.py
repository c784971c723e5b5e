"""PNG plots of a study (matplotlib, Agg backend): the optimisation history and the parameter importances.

The history is drawn here from the complete trials only (Optuna's own plot extends the best-value line over
trials that were enqueued but never run, e.g. the rest of a grid after `--trials 2`). The importances (Optuna's
PED-ANOVA evaluator) need MIN_IMPORTANCE_TRIALS complete trials that differ: from fewer they are noise, so the
plot is skipped with a note; its title says how many trials it rests on."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
from optuna.trial import FrozenTrial, TrialState

MIN_IMPORTANCE_TRIALS = 8  # fewer complete trials: no importance plot (the estimate would be noise)


def write_plots(study: optuna.Study, directory: str | Path) -> tuple[list[Path], list[str]]:
    """Write history.png and importance.png into `directory`; returns (paths written, notes on skipped plots)."""
    from optuna.visualization import matplotlib as vis

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    notes: list[str] = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return written, ["no complete trial: nothing to plot"]
    written.append(plot_history(complete, study.direction == optuna.study.StudyDirection.MAXIMIZE,
                                out / "history.png", study.study_name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        varied = {n for t in complete for n in t.params if len({str(c.params.get(n)) for c in complete}) > 1}
        if len(complete) < MIN_IMPORTANCE_TRIALS or not varied:
            notes.append(f"importance plot skipped: {len(complete)} complete trial(s); it needs at least "
                         f"{MIN_IMPORTANCE_TRIALS} with different parameters to mean anything")
        else:
            try:
                evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # fast; fANOVA takes seconds
                ax = vis.plot_param_importances(study, evaluator=evaluator, params=sorted(varied))
                ax.set_title(f"parameter importances (PED-ANOVA, from {len(complete)} complete trials)")
                written.append(_save(ax, out / "importance.png"))
            except (ImportError, ValueError, RuntimeError) as exc:
                notes.append(f"importance plot skipped: {exc}")
    return written, notes


def history_points(complete: list[FrozenTrial], maximize: bool) -> tuple[list[int], list[float], list[float]]:
    """(trial numbers + 1, values, best value so far) of the complete trials, in trial order: the best-value
    line ends at the last trial that ran."""
    numbers: list[int] = []
    values: list[float] = []
    best: list[float] = []
    for t in sorted(complete, key=lambda t: t.number):
        if t.value is None:
            continue
        v = float(t.value)
        numbers.append(t.number + 1)
        values.append(v)
        best.append(v if not best else (max if maximize else min)(best[-1], v))
    return numbers, values, best


def plot_history(complete: list[FrozenTrial], maximize: bool, path: Path, name: str = "") -> Path:
    numbers, values, best = history_points(complete, maximize)
    _, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(numbers, values, s=14, label="trial value (cv mean)")
    ax.step(numbers, best, where="post", color="C3", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective")
    ax.set_title(f"{name}: {len(numbers)} complete trial(s)" if name else f"{len(numbers)} complete trial(s)")
    if numbers:
        ax.set_xlim(min(numbers) - 0.5, max(numbers) + 0.5)
    ax.legend(loc="best", fontsize=8)
    return _save(ax, path)


def _save(ax: object, path: Path) -> Path:
    fig = ax.figure if hasattr(ax, "figure") else plt.gcf()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
