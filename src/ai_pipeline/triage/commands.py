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

if TYPE_CHECKING:
    from ai_pipeline.triage.export import UserExport
    from ai_pipeline.triage.train import ArtifactEvaluation

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
        typer.Option("--out-png", help="Chart path (default: bench/results/eval-<task>.png)."),
    ] = None,
) -> None:
    require_data_dir(data_dir)
    artifact = _load_or_exit(model_dir)
    png = out_png or Path("bench/results") / f"eval-{task.value}.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    if task is EvalTask.DUPLICATES:
        _eval_duplicates(artifact, data_dir, png)
    elif task is EvalTask.SECURITY:
        _eval_security(artifact, data_dir, png)
    else:
        _eval_classifier(artifact, task.value, data_dir, png)
    console.print(f"chart: {png}")


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


def _eval_classifier(artifact: Artifact, task: str, data_dir: Path, png: Path) -> None:
    from ai_pipeline.triage.train import evaluate_artifact

    evaluation = evaluate_artifact(artifact, task, data_dir)
    _warn_if_data_changed(evaluation.data_matches_artifact)
    console.print(_metrics_table(f"{task}: held-out metrics", evaluation.metrics))
    console.print(_confusion_table(evaluation))
    plot_confusion(evaluation, png)


def _eval_security(artifact: Artifact, data_dir: Path, png: Path) -> None:
    from ai_pipeline.triage.train import evaluate_artifact_security

    with console.status("embedding the FARSEC reports (about 2 minutes on one core)"):
        evaluation = evaluate_artifact_security(artifact, data_dir)
    _warn_if_data_changed(evaluation.data_matches_artifact)
    console.print(
        _metrics_table("security: each project scored by a fit on the others", evaluation.metrics)
    )
    console.print(_confusion_table(evaluation))
    plot_confusion(evaluation, png)


def _eval_duplicates(artifact: Artifact, data_dir: Path, png: Path) -> None:
    from ai_pipeline.triage.train import evaluate_artifact_duplicates

    with console.status("embedding the SeaMonkey reports, then replaying them in order"):
        recall, summary = evaluate_artifact_duplicates(artifact, data_dir)
    _warn_if_data_changed(bool(summary.pop("data_matches_artifact")))
    metrics = {f"recall@{k}": v for k, v in recall.items()} | summary
    console.print(_metrics_table("duplicates: SeaMonkey, each report against older ones", metrics))
    plot_recall(recall, png)


def _warn_if_data_changed(matches: bool) -> None:
    if not matches:
        console.print(
            "[yellow]warning:[/yellow] data files differ from those the artifact was trained "
            "on; the split and scores may not be comparable"
        )


def _metrics_table(title: str, metrics: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) else str(value))
    return table


def _confusion_table(evaluation: ArtifactEvaluation) -> Table:
    table = Table(title="confusion matrix (rows: truth, columns: predicted)")
    table.add_column("")
    for label in evaluation.labels:
        table.add_column(label, justify="right")
    for label, row in zip(evaluation.labels, evaluation.confusion, strict=True):
        table.add_row(label, *(str(v) for v in row))
    return table


def plot_confusion(evaluation: ArtifactEvaluation, png: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 4.5))
    axes.imshow(evaluation.confusion, cmap="Blues")
    ticks = range(len(evaluation.labels))
    axes.set_xticks(ticks, evaluation.labels, rotation=30)
    axes.set_yticks(ticks, evaluation.labels)
    darkest = max(max(row) for row in evaluation.confusion) or 1
    for i, row in enumerate(evaluation.confusion):
        for j, value in enumerate(row):
            colour = "white" if value > darkest / 2 else "black"  # readable on dark cells
            axes.text(j, i, str(value), ha="center", va="center", color=colour)
    axes.set_xlabel("predicted")
    axes.set_ylabel("truth")
    axes.set_title(f"{evaluation.task} (held-out)")
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)


def plot_recall(recall: dict[int, float], png: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(5, 3.5))
    ks = sorted(recall)
    axes.plot(ks, [recall[k] for k in ks], marker="o")
    axes.set_xticks(ks)
    axes.set_ylim(0, 1)
    axes.set_xlabel("k")
    axes.set_ylabel("recall@k")
    axes.set_title("duplicate search on SeaMonkey")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(png, dpi=100)
    plt.close(figure)


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
    if artifact.security is not None:
        pooled = artifact.security.scores.get("pooled", {})
        for metric in ("precision", "recall"):
            if metric in pooled:
                rows.append(("security", f"{metric}, projects left out", pooled[metric]))
    dup = artifact.duplicates
    recall = dup.scores.get("recall_at", {})
    for k in sorted(recall, key=int):
        rows.append(("duplicates", f"recall@{k}", recall[k]))
    rows.append(("duplicates", "duplicate_of threshold", dup.threshold))
    return rows


def main() -> None:
    """``python -m ai_pipeline.triage.commands train|eval ...`` without the service CLI."""
    app = typer.Typer(no_args_is_help=True)
    register(app)
    app()


if __name__ == "__main__":
    main()
