"""The LLM triage engine: an OpenAI-compatible model decides the fields, local backs it.

Division of labour: the local engine always runs first (it is cheap and pure). Its
duplicates and missing information stand. The LLM decides type, priority, severity,
category and extra labels, each with a confidence, may raise (never clear) the security
band to ``review`` and may suggest an assignee.

What the LLM can change is bounded twice: the answer's JSON schema lists the allowed
values as enums, and the parsed answer is checked again here. A value outside the
allowed sets is rejected and that field keeps the local engine's value. The LLM's
confidences are its own statement, not calibrated on held-out data, so a value is taken
only when the stated confidence reaches the field's precision target itself
(``AI_PIPELINE_TRIAGE_MIN_PRECISION``); otherwise the local value (decided or a
suggestion) stands, with the same labels and ``needs-triage`` rule as the local engine.
Priority and severity may be null ("nothing in the report says"): local's stand then. The
reasons of LLM values name the prompt and the stated confidence, never words the model
wrote (they would be report-influenced text in the issue body).

Any failure of the call (timeout, endpoint down, 4xx/5xx, unparsable answer, daily token
budget spent) returns the local result unchanged but for ``engine``, and is counted in
``ai_pipeline_llm_fallbacks_total{component="triage",reason}``.

A report the local engine finds security-sensitive is never sent to the model unless
``send_security`` (``AI_PIPELINE_LLM_SECURITY_REPORTS=allow``): the endpoint is often a
third party's, and such a report may describe an unfixed vulnerability. The local result
stands, counted with reason ``security_withheld``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ai_pipeline.adapters.llm import INVALID_OUTPUT, SECURITY_WITHHELD, ChatModel, LlmError
from ai_pipeline.agents.offload import off_loop
from ai_pipeline.domain.models import (
    AssigneeSuggestion,
    BugReport,
    DuplicateCandidate,
    IssueType,
    Priority,
    SecurityBand,
    Severity,
    TriageResult,
)
from ai_pipeline.domain.redaction import Redactor, redact_report
from ai_pipeline.observability.logging import get_logger
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.triage import prompts, rules
from ai_pipeline.triage.embeddings import Embedding
from ai_pipeline.triage.local import LocalTriageEngine
from ai_pipeline.triage.targets import TriageTargets

log = get_logger(__name__)

ENGINE = f"llm:{prompts.PROMPT_VERSION}"
FIELDS = ("type", "priority", "severity", "category")
NULLABLE = ("priority", "severity")
# Labels computed from the fields and flags (compose_labels): the LLM cannot pick these
# directly; it decides the fields they come from.
_FLAG_LABELS = (
    rules.SECURITY_LABEL,
    rules.NEEDS_INFO_LABEL,
    rules.NEEDS_TRIAGE_LABEL,
    rules.DUPLICATE_LABEL,
)


def default_allowed_labels() -> list[str]:
    """Every label the local engine can produce (``rules.compose_labels``)."""
    return [
        *rules.TYPE_LABELS.values(),
        *(f"priority: {p.value}" for p in Priority),
        *(f"severity: {s.value}" for s in Severity),
        *(f"area: {c}" for c in rules.CATEGORIES if c != rules.OTHER),
        *_FLAG_LABELS,
    ]


def _is_field_label(label: str) -> bool:
    return (
        label in rules.TYPE_LABELS.values()
        or label in _FLAG_LABELS
        or label.startswith(("priority: ", "severity: ", "area: "))
    )


@dataclass(frozen=True)
class AllowedValues:
    """What the repository accepts: labels (field labels and extras) and assignees."""

    labels: tuple[str, ...]
    assignees: tuple[str, ...] = ()

    @classmethod
    def of(cls, labels: Iterable[str], assignees: Iterable[str] = ()) -> AllowedValues:
        return cls(
            tuple(dict.fromkeys(x.strip() for x in labels if x.strip())),
            tuple(dict.fromkeys(a.strip().lstrip("@") for a in assignees if a.strip())),
        )

    @property
    def extra_labels(self) -> tuple[str, ...]:
        """Allowed labels the LLM may add beyond those the fields produce."""
        return tuple(label for label in self.labels if not _is_field_label(label))


def triage_schema(allowed: AllowedValues) -> dict[str, Any]:
    """The JSON schema of the answer: every value an enum of what is allowed."""
    confidence = {"type": "number", "minimum": 0, "maximum": 1}
    properties: dict[str, Any] = {}
    for name, values in (
        ("type", [t.value for t in IssueType]),
        ("priority", [p.value for p in Priority]),
        ("severity", [s.value for s in Severity]),
        ("category", list(rules.CATEGORIES)),
    ):
        if name in NULLABLE:
            properties[name] = {"type": ["string", "null"], "enum": [*values, None]}
        else:
            properties[name] = {"type": "string", "enum": values}
        properties[f"{name}_confidence"] = confidence
    properties["security_sensitive"] = {"type": "boolean"}
    properties["security_confidence"] = confidence
    if allowed.extra_labels:
        properties["labels"] = {
            "type": "array",
            "items": {"type": "string", "enum": list(allowed.extra_labels)},
            "maxItems": len(allowed.extra_labels),
        }
    if allowed.assignees:
        properties["assignee"] = {"enum": [*allowed.assignees, None]}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


class LlmAnswer(BaseModel):
    """The answer's shape. Values are plain strings here and checked one by one after, so
    one bad field falls back alone instead of discarding the whole answer."""

    model_config = ConfigDict(extra="ignore")

    type: str
    type_confidence: float
    priority: str | None = None
    priority_confidence: float = 0.0
    severity: str | None = None
    severity_confidence: float = 0.0
    category: str
    category_confidence: float
    security_sensitive: bool = False
    security_confidence: float = 0.0
    labels: list[str] = []
    assignee: str | None = None


@dataclass(frozen=True)
class Merged:
    result: TriageResult
    rejected: list[str]  # fields whose LLM value was outside the allowed set


def _confidence(value: float) -> float:
    return round(min(1.0, max(0.0, float(value))), 4)


def merge(
    base: TriageResult,
    answer: LlmAnswer,
    allowed: AllowedValues,
    targets: TriageTargets,
    missing_for: Callable[[IssueType], list[str]],
) -> Merged:
    """The local result with the LLM's valid, confident fields laid over it.

    ``missing_for(type)`` recomputes missing information when the LLM changes the type
    (a feature request needs no steps to reproduce; a bug does).
    """
    rejected: list[str] = []
    confidence, reasons = dict(base.confidence), dict(base.reasons)
    suggested = list(base.suggested)
    values: dict[str, str | None] = {
        "type": base.type.value,
        "priority": base.priority.value if base.priority else None,
        "severity": base.severity.value if base.severity else None,
        "category": base.category,
    }
    choices = {
        "type": {t.value for t in IssueType},
        "priority": {p.value for p in Priority},
        "severity": {s.value for s in Severity},
        "category": set(rules.CATEGORIES),
    }
    for name in FIELDS:
        value: str | None = getattr(answer, name)
        sure = _confidence(getattr(answer, f"{name}_confidence"))
        if value is None and name in NULLABLE:
            continue  # nothing in the report says: local's value (or none) stands
        if value not in choices[name]:
            rejected.append(name)
        elif sure >= _target(targets, name):
            values[name], confidence[name] = value, sure
            reasons[name] = f"LLM triage (prompt {prompts.PROMPT_VERSION}, confidence {sure:.2f})"
            suggested = [f for f in suggested if f != name]
    issue_type = IssueType(values["type"] or base.type.value)
    band = base.security_band
    raised = _confidence(answer.security_confidence)
    # Raised only, never cleared, and only to review: a person looks before it is hidden.
    if (
        answer.security_sensitive
        and band is SecurityBand.PUBLIC
        and raised >= targets.precision("security")
    ):
        band = SecurityBand.REVIEW
        confidence["security"] = raised
        reasons["security"] = (
            f"LLM triage (prompt {prompts.PROMPT_VERSION}, confidence {raised:.2f})"
            " → security review"
        )
    extras = []
    for label in dict.fromkeys(answer.labels):
        if label in allowed.extra_labels:
            extras.append(label)
        else:
            rejected.append("labels")
    assignee = base.assignee_suggestion
    if answer.assignee is not None:
        if answer.assignee.lstrip("@") not in allowed.assignees:
            rejected.append("assignee")
        elif assignee is None:
            assignee = AssigneeSuggestion(
                assignee=answer.assignee.lstrip("@"),
                reason=f"suggested by the LLM triage engine (prompt {prompts.PROMPT_VERSION})",
            )
    # Missing information depends on the type (features need no repro steps).
    missing = base.missing_information
    if issue_type is not base.type:
        missing = missing_for(issue_type)
    priority = Priority(values["priority"]) if values["priority"] else None
    severity = Severity(values["severity"]) if values["severity"] else None
    composed = rules.compose_labels(
        rules.LabelInputs(
            issue_type=issue_type,
            priority=priority,
            severity=severity,
            category=values["category"] or base.category,
            security_sensitive=band is not SecurityBand.PUBLIC,
            missing_information=missing,
            suggested=suggested,
            duplicate=base.duplicate_of is not None,
        )
    )
    # Field labels the repository lacks are dropped; the flags stay whatever the list says
    # (dropping `security` would publish what must stay private).
    labels = [x for x in composed if x in allowed.labels or x in _FLAG_LABELS]
    result = base.model_copy(
        update={
            "type": issue_type,
            "priority": priority,
            "severity": severity,
            "category": values["category"] or base.category,
            "labels": list(dict.fromkeys([*labels, *extras])),
            "missing_information": missing,
            "security_band": band,
            "security_sensitive": band is not SecurityBand.PUBLIC,
            "assignee_suggestion": assignee,
            "confidence": confidence,
            "reasons": reasons,
            "suggested": suggested,
            "engine": ENGINE,
        }
    )
    return Merged(result, sorted(set(rejected)))


def _target(targets: TriageTargets, name: str) -> float:
    # Category has no held-out labels, hence no target of its own: the general one.
    return targets.precision(name) if name != "category" else targets.min_precision


def fallback(base: TriageResult, reason: str) -> TriageResult:
    return base.model_copy(update={"engine": f"local (llm fallback: {reason})"})


class LlmTriageEngine:
    """Implements ``TriageEngine``: the LLM over the local engine, local on any failure."""

    name: str = "llm"

    def __init__(
        self,
        local: LocalTriageEngine,
        chat: ChatModel,
        allowed: AllowedValues,
        metrics: Metrics,
        redactor: Redactor,
        send_security: bool = False,
    ) -> None:
        self.local = local
        self.chat = chat
        self.allowed = allowed
        self.metrics = metrics
        self.redactor = redactor
        self.send_security = send_security
        self.schema = triage_schema(allowed)

    async def triage(
        self,
        report: BugReport,
        candidates: list[DuplicateCandidate],
        embedding: Embedding | None = None,
    ) -> TriageResult:
        # The work on the report's text runs on a worker, within the report's budget.
        base = await off_loop(self.local.decide, report, candidates, embedding)
        if base.security_sensitive and not self.send_security:
            self.metrics.llm_fallbacks.labels("triage", SECURITY_WITHHELD).inc()
            return fallback(base, SECURITY_WITHHELD)
        messages = await off_loop(self._messages, report)
        try:
            completion = await self.chat.complete(messages, "triage", self.schema)
            answer = _parse(completion.content)
        except LlmError as error:
            self.metrics.llm_fallbacks.labels("triage", error.reason).inc()
            log.warning("llm_triage_fallback", reason=error.reason, error=str(error))
            return fallback(base, error.reason)
        merged = await off_loop(
            merge,
            base,
            answer,
            self.allowed,
            self.local.targets,
            lambda issue_type: rules.missing_information(report, issue_type),
        )
        for name in merged.rejected:
            self.metrics.llm_rejected_values.labels("triage", name).inc()
        if merged.rejected:
            log.warning("llm_values_rejected", fields=merged.rejected)
        return merged.result

    def _messages(self, report: BugReport) -> list[dict[str, str]]:
        return prompts.triage_messages(
            redact_report(report, self.redactor), self.allowed.extra_labels, self.allowed.assignees
        )


def _parse(content: str) -> LlmAnswer:
    try:
        return LlmAnswer.model_validate_json(content)
    except ValidationError as error:
        raise LlmError(INVALID_OUTPUT, "answer does not match the schema") from error


def allowed_from_settings(labels: Sequence[str] | None, assignees: Sequence[str]) -> AllowedValues:
    return AllowedValues.of(labels if labels else default_allowed_labels(), assignees)
