"""The learned triage tasks, one small declared class each (in the style of bugbug's models).

A task says which files it reads under the data directory, how a row becomes an
:class:`Example` (text, label, group), how raw labels map to the service's labels, and the
model settings chosen for it. ``TASKS`` maps a task name to its class.

Model settings were chosen by 5-fold cross-validation on the training split only (macro-F1;
average precision for ``security``); the held-out split is reserved for the reported scores.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from ai_pipeline.triage.artifact import Analyzer
from ai_pipeline.triage.features import join_fields

# Issue bodies in these CSVs exceed the csv module's default 128 KiB field limit.
csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    group: str  # repository or project: stratification key and per-repo scores


@dataclass(frozen=True)
class ModelSettings:
    analyzer: Analyzer
    min_df: int
    C: float
    class_weight: Literal["balanced"] | None


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        yield from csv.DictReader(handle)


class Task:
    """Base of the declared tasks. Subclasses set the class attributes and ``examples``."""

    name: ClassVar[str]
    labels: ClassVar[tuple[str, ...]]  # in the service's natural order (low → high)
    data_files: ClassVar[tuple[str, ...]]  # relative to the data directory
    settings: ClassVar[ModelSettings]
    # Whether the model ``train`` fits from the shipped data may set the field in the
    # service; a model fitted on a team's own labels (``train --from``) always may.
    decides_from_shipped_data: ClassVar[bool] = True
    # C of a second logistic regression over each report's dense row (sentence embedding and
    # template cues, ``type_features.py``) averaged with the tf-idf model; None: tf-idf only.
    dense_C: ClassVar[float | None] = None
    # Per-group models (the NLBSE protocol) also train on the other groups' rows at this
    # sample weight.
    other_group_weight: ClassVar[float] = 0.0

    @classmethod
    def map_label(cls, raw: str) -> str | None:
        """The service's label for a raw dataset label, or None to drop the row."""
        raw = raw.strip()
        return raw if raw in cls.labels else None

    def examples(self, data_dir: Path) -> list[Example]:
        raise NotImplementedError


class IssueTypeTask(Task):
    """NLBSE'24: GitHub issues of five repositories labelled bug / feature / question.

    Mean of two logistic regressions' probabilities: word uni+bigram tf-idf (C=30), and
    MiniLM embedding of title+body (128 tokens) plus template cues (C=3). Chosen by 5-fold
    cross-validation per repository (see the manifest's ``per_repository_cv``); char n-gram
    tf-idf, title-only blocks and linear SVMs did not add to this pair.
    """

    name = "type"
    labels = ("bug", "feature", "question")
    data_files = ("nlbse24/issues_train.csv",)
    settings = ModelSettings(analyzer="bigram", min_df=2, C=30.0, class_weight=None)
    dense_C = 3.0
    other_group_weight = 0.3

    def examples(self, data_dir: Path) -> list[Example]:
        examples = []
        for row in read_csv(data_dir / self.data_files[0]):
            label = self.map_label(row["label"])
            if label is not None:
                text = join_fields([row["title"], row["body"]])
                examples.append(Example(text, label, row["repo"]))
        return examples


class _HadoopPriorityTask(Task):
    """Hadoop Jira reports: one ``Priority`` field, mapped to a four-level scale."""

    data_files = ("gitbugs/hadoop/hadoop_bugs.csv",)
    # Major is 69% of the rows: balanced class weights trade a little accuracy for
    # actually predicting the rare levels (macro-F1 0.46 vs 0.33 in cross-validation).
    settings = ModelSettings(analyzer="bigram", min_df=3, C=1.0, class_weight="balanced")
    # Another project's priorities barely beat its majority class (accuracy 0.68 against
    # 0.69): the service sets priority and severity from explicit signals instead
    # (``signals.py``), and this model is kept to measure what a team's own would do.
    decides_from_shipped_data = False
    jira_map: ClassVar[dict[str, str]]

    @classmethod
    def map_label(cls, raw: str) -> str | None:
        return cls.jira_map.get(raw.strip())

    def examples(self, data_dir: Path) -> list[Example]:
        examples = []
        for row in read_csv(data_dir / self.data_files[0]):
            label = self.map_label(row["Priority"])
            if label is not None:
                text = join_fields([row["Summary"], row["Description"]])
                examples.append(Example(text, label, "hadoop"))
        return examples


class PriorityTask(_HadoopPriorityTask):
    name = "priority"
    labels = ("low", "medium", "high", "critical")
    jira_map: ClassVar[dict[str, str]] = {
        "Trivial": "low",
        "Minor": "low",
        "Major": "medium",
        "Critical": "high",
        "Blocker": "critical",
    }


class SeverityTask(_HadoopPriorityTask):
    """Same source field as ``priority`` (Hadoop has no separate severity), other names."""

    name = "severity"
    labels = ("minor", "moderate", "major", "blocker")
    jira_map: ClassVar[dict[str, str]] = {
        "Trivial": "minor",
        "Minor": "minor",
        "Major": "moderate",
        "Critical": "major",
        "Blocker": "blocker",
    }


class SecurityTask(Task):
    """FARSEC: Jira reports of three Apache projects, security bug report or not."""

    name = "security"
    labels = ("other", "security")
    data_files = ("farsec/ambari-rest.csv", "farsec/camel-rest.csv", "farsec/wicket-rest.csv")
    settings = ModelSettings(analyzer="unigram", min_df=2, C=1.0, class_weight="balanced")
    raw_labels: ClassVar[dict[str, str]] = {"0": "other", "1": "security"}

    @classmethod
    def map_label(cls, raw: str) -> str | None:
        return cls.raw_labels.get(raw.strip())

    def examples(self, data_dir: Path) -> list[Example]:
        examples = []
        for relative in self.data_files:
            project = Path(relative).stem.removesuffix("-rest")
            for row in read_csv(data_dir / relative):
                label = self.map_label(row["security"])
                if label is not None:
                    examples.append(Example(row["summary"], label, project))
        return examples


TASKS: dict[str, type[Task]] = {
    task.name: task for task in (IssueTypeTask, PriorityTask, SeverityTask, SecurityTask)
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


# ------------------------------------------------------------------ duplicate detection data


@dataclass(frozen=True)
class Report:
    id: str
    title: str
    description: str

    @property
    def text(self) -> str:
        return join_fields([self.title, self.description])


SEAMONKEY_REPORTS = "gitbugs/seamonkey/SeaMonkey_bugs.csv"
HADOOP_REPORTS = "gitbugs/hadoop/hadoop_bugs.csv"
SEAMONKEY_PAIRS = "gitbugs/seamonkey/SeaMonkey_bugs-combined.csv"
DUPLICATE_FILES = (SEAMONKEY_REPORTS, SEAMONKEY_PAIRS)
