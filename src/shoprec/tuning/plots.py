"""PNG plots of a study (Optuna's matplotlib visualisations, Agg backend): the optimisation history and
the parameter importances (Optuna's PED-ANOVA evaluator; needs at least two complete trials that differ)."""

from __future__ import annotations

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import optuna
from optuna.trial import TrialState


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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        ax = vis.plot_optimization_history(study)
        written.append(_save(ax, out / "history.png"))
        varied = {n for t in complete for n in t.params if len({str(c.params.get(n)) for c in complete}) > 1}
        if len(complete) < 2 or not varied:
            notes.append("importance plot skipped: needs two complete trials with different parameters")
        else:
            try:
                evaluator = optuna.importance.PedAnovaImportanceEvaluator()  # fast; fANOVA takes seconds
                ax = vis.plot_param_importances(study, evaluator=evaluator, params=sorted(varied))
                written.append(_save(ax, out / "importance.png"))
            except (ImportError, ValueError, RuntimeError) as exc:
                notes.append(f"importance plot skipped: {exc}")
    return written, notes


def _save(ax: object, path: Path) -> Path:
    fig = ax.figure if hasattr(ax, "figure") else plt.gcf()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
