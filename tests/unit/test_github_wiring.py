"""Settings become GitHub trackers: token or App, the private repository, the gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from ai_pipeline.adapters.trackers.github import GitHubTracker
from ai_pipeline.adapters.trackers.github_auth import AppAuth, TokenAuth
from ai_pipeline.adapters.trackers.github_wiring import github_trackers
from ai_pipeline.agents.tracker import TrackerAgent
from ai_pipeline.bootstrap import bootstrap
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.settings import Settings
from tests.conftest import make_settings
from tests.factories import app_key_pems

TOKEN = "ghp_WIRINGtoken0123456789abcdef"


def settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "tracker": "github",
        "github_repository": "acme/widgets",
        "github_token": TOKEN,
        **overrides,
    }
    return make_settings(f"sqlite:///{tmp_path / 'p.db'}", **values)


def test_security_reports_go_to_the_private_repository_sharing_one_gate(tmp_path: Path) -> None:
    s = settings(tmp_path, github_private_repository="acme/security", duplicate_mode="comment")
    container = bootstrap(s)
    public, private = container.tracker, container.private_tracker

    assert isinstance(public, GitHubTracker) and isinstance(private, GitHubTracker)
    assert (public.repository, private.repository) == ("acme/widgets", "acme/security")
    assert private._options.require_private and not public._options.require_private
    assert private._gate is public._gate  # one token, one set of GitHub limits
    assert container.local_tracker is None
    agent = next(r for r in container.runners if r.spec.name == "github_api_agent")
    owner = agent.spec.handle.__self__  # type: ignore[attr-defined]
    assert isinstance(owner, TrackerAgent) and owner.private_tracker is private
    assert owner.duplicates == "comment"
    assert private.close in container.close_hooks


def test_without_a_private_repository_security_reports_stay_in_the_service(
    tmp_path: Path,
) -> None:
    container = bootstrap(settings(tmp_path))
    assert container.private_tracker is None and container.local_tracker is not None
    public = make_settings(
        f"sqlite:///{tmp_path / 'q.db'}",
        tracker="github",
        github_repository="acme/widgets",
        github_token=TOKEN,
        github_private_repository="acme/security",
        security_reports="public",
    )
    assert github_trackers(public, Metrics())[1] is None


def test_a_github_app_is_used_when_configured(tmp_path: Path) -> None:
    pem, _ = app_key_pems()
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem)
    app = settings(
        tmp_path,
        github_token=None,
        github_app_id=12,
        github_app_installation_id=34,
        github_app_private_key_file=str(key_file),
    )
    tracker, _ = github_trackers(app, Metrics())
    assert isinstance(tracker._auth, AppAuth)
    assert isinstance(github_trackers(settings(tmp_path), Metrics())[0]._auth, TokenAuth)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"github_token": None}, "needs AI_PIPELINE_GITHUB_TOKEN, or a GitHub App"),
        ({"github_app_id": 12}, "needs both AI_PIPELINE_GITHUB_APP_ID"),
        (
            {"github_app_id": 12, "github_app_installation_id": 34},
            "AI_PIPELINE_GITHUB_APP_PRIVATE_KEY",
        ),
    ],
)
def test_incomplete_github_settings_say_what_is_missing(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        github_trackers(settings(tmp_path, **overrides), Metrics())
