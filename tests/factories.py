"""Builders for test data."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from ai_pipeline.domain.models import BugReport, IssueType, Priority, Severity, TriageResult
from ai_pipeline.triage.artifact import Artifact
from ai_pipeline.triage.calibration import Calibrator, FieldCalibration, PrecisionCurve

_ids = itertools.count(1)


def report_dict(**overrides: Any) -> dict[str, Any]:
    n = next(_ids)
    body: dict[str, Any] = {
        "id": f"BUG-{n}",
        "title": f"Editor crashes when saving file number {n}",
        "description": "Saving a large file makes the editor crash with a segmentation fault.",
        "reporter": "reporter@example.com",
        "steps_to_reproduce": ["Open a 2 GB file", "Press Ctrl+S"],
        "expected_behavior": "The file is saved",
        "actual_behavior": "Segmentation fault (core dumped)",
        "environment": {"os": "Ubuntu 24.04", "version": "2.3.1"},
    }
    body.update(overrides)
    return body


def report(**overrides: Any) -> BugReport:
    return BugReport.model_validate(report_dict(**overrides))


def triage(**overrides: Any) -> TriageResult:
    values: dict[str, Any] = {
        "type": IssueType.BUG,
        "priority": Priority.HIGH,
        "severity": Severity.MAJOR,
        "category": "crash",
        "labels": ["bug", "crash"],
        "confidence": {"type": 0.91, "priority": 0.55},
    }
    values.update(overrides)
    return TriageResult.model_validate(values)


def linking_duplicates(artifact: Artifact, from_similarity: float) -> Artifact:
    """``artifact`` with a duplicate calibration that links from ``from_similarity`` up (the
    shipped one never reaches the default precision target: see the README)."""
    curve = PrecisionCurve(
        thresholds=(0.0, from_similarity),
        precision=(0.05, 1.0),
        support=(2000, 1000),
        recall=(1.0, 1.0),
        total=2000,
    )
    linking = FieldCalibration(Calibrator("isotonic", (0.0, 1.0), (0.0, 1.0)), curve)
    return dataclasses.replace(
        artifact, calibrations={**artifact.calibrations, "duplicate": linking}
    )


def app_key_pems() -> tuple[str, str]:
    """A fresh GitHub App key pair: (private PEM as GitHub issues it, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN RSA PRIVATE KEY"
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()
