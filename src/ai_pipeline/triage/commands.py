"""CLI: ``train`` and ``eval`` sub-commands for the local triage model.

The service's CLI calls :func:`register` on its Typer app. Training code (scikit-learn,
matplotlib) is imported inside the commands so the CLI itself starts fast.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ai_pipeline.triage.artifact import Artifact, ArtifactError, default_model_dir, load_artifact
from ai_pipeline.triage.calibration import expected_calibration_error, reliability

if TYPE_CHECKING:
    from ai_pipeline.triage.evaluation import Evaluation, TableData
    from ai_pipeline.triage.export import UserExport
    from ai_pipeline.triage.targets import TriageTargets

DEFAULT_DATA_DIR = Path("../shared/data")
USAGE_ERROR_EXIT_CODE = 2

console = Console()


class EvalTask(StrEnum):
    TYPE = "type"
    PRIORITY = "priority"
    SEVERITY = "severity"
    SECURITY = "security"
    DUPLICATES = "duplicates"


DataDirOption = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Folder holding nlbse24/, gitbugs/ and farsec/ (relative to the current directory).",
    ),
]
ModelDirOption = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Artifact directory (default: the model in the package)."),
]


def register(app: typer.Typer) -> None:
    """Add the ``train`` and ``eval`` commands to ``app``."""
    app.command("train", help="Train the triage models and save the artifact.")(train_command)
    app.command("eval", help="Evaluate the saved artifact on the held-out split.")(eval_command)


def train_command(
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the artifact (default: the package model)."),
    ] = None,
    export_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A CSV or JSONL export of your own labelled issues (format: see README):"
            " refit what it labels, keep the shipped model for the rest.",
        ),
    ] = None,
) -> None:
    from rich.progress import Progress

    from ai_pipeline.triage import train as training

    if export_file is None:
        require_data_dir(data_dir)
    elif out is None:
        console.print("[red]error:[/red] --from needs --out: the shipped model stays as it is")
        raise typer.Exit(code=USAGE_ERROR_EXIT_CODE)
    else:
        export = _export_or_exit(export_file)
        base = _load_or_exit(None)
    with Progress(console=console) as progress:
        bar = progress.add_task("training", total=training.TRAIN_STEPS)

        def advance(step: str) -> None:
            progress.update(bar, advance=1, description=step)

        if export_file is None:
            artifact = training.train(data_dir, progress=advance)
        else:
            progress.update(bar, total=len(export.tasks()) + 1)
            artifact = training.train_from_export(export, base, progress=advance)
    paths = training.save(artifact, out or default_model_dir())
    console.print(scores_table(artifact))
    total = sum(path.stat().st_size for path in paths)
    console.print(f"artifact: {paths[0].parent} ({total / 1e6:.2f} MB)")


def _export_or_exit(path: Path) -> UserExport:
    from ai_pipeline.triage.export import ExportError, load_export

    try:
        export = load_export(path)
    except ExportError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=USAGE_ERROR_EXIT_CODE) from None
    for field, values in export.unmapped.items():
        shown = ", ".join(f"{v!r} ×{n}" for v, n in values.most_common(5))
        console.print(f"[yellow]skipped[/yellow] {field} values that map to nothing: {shown}")
    if not export.tasks() and len(export.chronological_pairs().queries) == 0:
        console.print(
            f"[red]error:[/red] {path.name} labels nothing trainable: each task needs two"
            " classes with at least 10 examples each"
        )
        raise typer.Exit(code=USAGE_ERROR_EXIT_CODE)
    console.print(f"{path.name}: {export.rows} records; training {', '.join(export.tasks())}")
    return export


def eval_command(
    task: Annotated[EvalTask, typer.Option("--task", help="What to evaluate.")],
    data_dir: DataDirOption = DEFAULT_DATA_DIR,
    model_dir: ModelDirOption = None,
    out_png: Annotated[
        Path | None,
        typer.Option(
            "--out-png",
            help="Reliability diagram path (default: bench/results/eval-<task>.png).",
        ),
    ] = None,
) -> None:
    """Calibrated figures beside their targets, at the thresholds the service's settings
    give (AI_PIPELINE_TRIAGE_MIN_PRECISION…), and a reliability diagram."""
    from rich.progress import Progress

    from ai_pipeline.triage import evaluation
    from ai_pipeline.triage.train import DenseRows

    require_data_dir(data_dir)
    artifact = _load_or_exit(model_dir)
    targets = _targets_or_exit()
    png = out_png or Path("bench/results") / f"eval-{task.value}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("embedding reports (about 30 a second per core)", total=None)
        rows = DenseRows(progress=lambda n: progress.advance(bar, n))
        if task is EvalTask.DUPLICATES:
            result = evaluation.evaluate_duplicates(artifact, data_dir, targets, rows)
        elif task is EvalTask.SECURITY:
            result = evaluation.evaluate_security(artifact, data_dir, targets, rows)
        elif task is EvalTask.TYPE:
            result = evaluation.evaluate_classifier(artifact, task.value, data_dir, targets, rows)
        else:
            result = evaluation.evaluate_levels(artifact, task.value, data_dir, targets, rows)
    _warn_if_data_changed(result.data_matches_artifact)
    console.print(_figures_table(result))
    for table in result.tables:
        console.print(_table(table))
    if result.confusion is not None:
        console.print(_confusion_table(*result.confusion))
    plot_evaluation(result, png)
    console.print(f"reliability diagram: {png}")


def _targets_or_exit() -> TriageTargets:
    from pydantic import ValidationError

    from ai_pipeline.settings import Settings

    try:
        return Settings().triage_targets()
    except (ValidationError, ValueError) as error:
        console.print(f"[red]error:[/red] settings: {error}")
        raise typer.Exit(code=USAGE_ERROR_EXIT_CODE) from None


def require_data_dir(data_dir: Path) -> None:
    if not data_dir.is_dir():
        console.print(
            f"[red]error:[/red] data directory {data_dir} not found "
            f"(resolved to {data_dir.resolve()}). Pass --data-dir pointing at the folder "
            "holding nlbse24/, gitbugs/ and farsec/."
        )
        raise typer.Exit(code=USAGE_ERROR_EXIT_CODE)


def _load_or_exit(model_dir: Path | None) -> Artifact:
    try:
        return load_artifact(model_dir)
    except ArtifactError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=USAGE_ERROR_EXIT_CODE) from None


# ---------------------------------------------------------------------------------- eval


def _warn_if_data_changed(matches: bool) -> None:
    if not matches:
        console.print(
            "[yellow]warning:[/yellow] data files differ from those the artifact was trained "
            "on; the split and scores may not be comparable"
        )


def _figures_table(result: Evaluation) -> Table:
    table = Table(title=f"{result.task}: held-out figures")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    for figure in result.figures:
        value = figure.value
        shown = (
            "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
        )
        table.add_row(figure.name, shown, figure.target)
    return table


def _table(data: TableData) -> Table:
    table = Table(title=data.title)
    for i, column in enumerate(data.columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in data.rows:
        table.add_row(*row)
    return table


def _confusion_table(labels: list[str], confusion: list[list[int]]) -> Table:
    table = Table(title="confusion matrix (rows: truth, columns: predicted)")
    table.add_column("")
    for label in labels:
        table.add_column(label, justify="right")
    for label, row in zip(labels, confusion, strict=True):
        table.add_row(label, *(str(v) for v in row))
    return table


def plot_evaluation(result: Evaluation, png: Path) -> None:
    """A reliability diagram (share right against confidence, per bin, the diagonal being
    perfect calibration) with the number of values per bin beneath; beside it the
    confusion matrix or recall@k when the task has one."""
    plt = _pyplot()
    extra = result.confusion is not None or result.recall is not None
    figure, axes = plt.subplots(
        2,
        2 if extra else 1,
        figsize=(10 if extra else 5.5, 6.5),
        gridspec_kw={"height_ratios": [3, 1]},
        squeeze=False,
    )
    curve, counts = axes[0][0], axes[1][0]
    curve.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfectly calibrated")
    for name, (confidence, correct) in result.reliability.items():
        bins = reliability(confidence, correct)
        ece = expected_calibration_error(confidence, correct)
        curve.plot(
            [b.confidence for b in bins],
            [b.accuracy for b in bins],
            marker="o",
            label=f"{name} (ECE {ece:.3f})",
        )
        counts.bar(
            [(b.lower + b.upper) / 2 for b in bins],
            [b.count for b in bins],
            width=0.09,
            alpha=0.5,
            label=name,
        )
    curve.set_xlim(0, 1)
    curve.set_ylim(0, 1)
    curve.set_ylabel("share right")
    curve.set_title(f"{result.task}: reliability on held-out data")
    curve.legend(loc="upper left", fontsize=8)
    curve.grid(alpha=0.3)
    counts.set_xlim(0, 1)
    counts.set_xlabel("confidence")
    counts.set_ylabel("values")
    counts.set_yscale("log")
    if extra:
        axes[1][1].axis("off")
        if result.confusion is not None:
            _draw_confusion(axes[0][1], *result.confusion)
        elif result.recall is not None:
            _draw_recall(axes[0][1], result.recall)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)


def _draw_confusion(axes: Any, labels: list[str], confusion: list[list[int]]) -> None:
    axes.imshow(confusion, cmap="Blues")
    ticks = range(len(labels))
    axes.set_xticks(ticks, labels, rotation=30)
    axes.set_yticks(ticks, labels)
    darkest = max(max(row) for row in confusion) or 1
    for i, row in enumerate(confusion):
        for j, value in enumerate(row):
            colour = "white" if value > darkest / 2 else "black"  # readable on dark cells
            axes.text(j, i, str(value), ha="center", va="center", color=colour)
    axes.set_xlabel("predicted")
    axes.set_ylabel("truth")
    axes.set_title("confusion (held-out)")


def _draw_recall(axes: Any, recall: dict[int, float]) -> None:
    ks = sorted(recall)
    axes.plot(ks, [recall[k] for k in ks], marker="o")
    axes.set_xticks(ks)
    axes.set_ylim(0, 1)
    axes.set_xlabel("k")
    axes.set_ylabel("recall@k")
    axes.set_title("candidate list on SeaMonkey")
    axes.grid(alpha=0.3)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------- train


def scores_table(artifact: Artifact) -> Table:
    """Validation scores of every task and of duplicate search, one row per figure."""
    table = Table(title="validation scores (held-out split)")
    table.add_column("task")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for task, metric, value in score_rows(artifact):
        table.add_row(task, metric, f"{value:.4f}")
    return table


def score_rows(artifact: Artifact) -> list[tuple[str, str, float]]:
    rows: list[tuple[str, str, float]] = []
    for name, spec in sorted(artifact.classifiers.items()):
        scores = spec.scores
        if "macro_f1" in scores:
            rows += [(name, "macro-F1", scores["macro_f1"]), (name, "accuracy", scores["accuracy"])]
        for key, label in (
            ("macro_f1_per_group", "macro-F1 per repo, mean (one model)"),
            ("per_repository_models", "macro-F1 per repo, mean (NLBSE protocol, held-out)"),
        ):
            if key in scores:
                rows.append((name, label, scores[key]["mean"]))
        cv = scores.get("cross_validation", {}).get("per_repository")
        if cv:
            rows.append((name, "macro-F1 per repo, mean (NLBSE protocol, 5-fold CV)", cv["mean"]))
        calibration = scores.get("calibration", {})
        for key, label in (
            ("ece", "ECE, held-out (calibrated)"),
            ("decided_share", "share decided at the default target"),
            ("decided_precision", "precision of those decided"),
        ):
            if calibration.get(key) is not None:
                rows.append((name, label, calibration[key]))
    if artifact.security is not None:
        security = artifact.security.scores
        pooled = security.get("pooled", {})
        for key, label in (
            ("recall_private_review", "recall of private + review, projects left out"),
            ("review_share", "review band share, projects left out"),
        ):
            if key in pooled:
                rows.append(("security", label, pooled[key]))
        if "ece_held_out" in security:
            rows.append(("security", "ECE, projects left out", security["ece_held_out"]))
    dup = artifact.duplicates
    recall = dup.scores.get("recall_at", {})
    for k in sorted(recall, key=int):
        rows.append(("duplicates", f"recall@{k}", recall[k]))
    flagged = dup.scores.get("at_default_threshold", {})
    if "flag_rate" in flagged:
        rows.append(
            ("duplicates", "duplicate_of flag rate at the default target", flagged["flag_rate"])
        )
    return rows


def main() -> None:
    """``python -m ai_pipeline.triage.commands train|eval ...`` without the service CLI."""
    app = typer.Typer(no_args_is_help=True)
    register(app)
    app()


if __name__ == "__main__":
    main()
