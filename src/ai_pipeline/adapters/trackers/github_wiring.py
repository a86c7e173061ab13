"""GitHub trackers from settings: the public one and, if set, the private one for
security-sensitive reports. Both share one rate gate: GitHub counts a token's (or an
installation's) requests together, whichever repository they go to."""

from __future__ import annotations

from pathlib import Path

from ai_pipeline.adapters.trackers.github import GitHubOptions, GitHubTracker
from ai_pipeline.adapters.trackers.github_auth import AppAuth, GitHubAuth, TokenAuth
from ai_pipeline.adapters.trackers.github_pacing import RateGate
from ai_pipeline.observability.metrics import Metrics
from ai_pipeline.settings import Settings


def github_trackers(
    settings: Settings, metrics: Metrics
) -> tuple[GitHubTracker, GitHubTracker | None]:
    if settings.github_repository is None:
        raise ValueError("AI_PIPELINE_TRACKER=github needs AI_PIPELINE_GITHUB_REPOSITORY")
    auth = github_auth(settings)
    gate = RateGate(settings.github_creations_per_minute, settings.github_creations_per_hour)
    options = GitHubOptions(
        labels=settings.github_labels,
        milestone=settings.github_milestone,
        max_wait_seconds=settings.github_max_wait_seconds,
        listing_lag_seconds=settings.github_listing_lag_seconds,
    )

    def tracker(repository: str, options: GitHubOptions, name: str) -> GitHubTracker:
        return GitHubTracker(
            settings.github_api_url,
            repository,
            auth,
            timeout=settings.github_timeout_seconds,
            options=options,
            gate=gate,
            metrics=metrics,
            name=name,
        )

    public = tracker(settings.github_repository, options, "github")
    private = None
    if settings.github_private_repository and settings.security_reports == "private":
        # The milestone is the public repository's; the private one gets none.
        private_options = GitHubOptions(
            labels=settings.github_labels,
            require_private=True,
            max_wait_seconds=settings.github_max_wait_seconds,
            listing_lag_seconds=settings.github_listing_lag_seconds,
        )
        private = tracker(settings.github_private_repository, private_options, "github-private")
    return public, private


def github_auth(settings: Settings) -> GitHubAuth:
    app = (settings.github_app_id, settings.github_app_installation_id)
    if any(value is not None for value in app):
        app_id, installation_id = app
        if app_id is None or installation_id is None:
            raise ValueError(
                "a GitHub App needs both AI_PIPELINE_GITHUB_APP_ID and"
                " AI_PIPELINE_GITHUB_APP_INSTALLATION_ID"
            )
        return AppAuth(settings.github_api_url, app_id, _private_key(settings), installation_id)
    if settings.github_token is None:
        raise ValueError(
            "AI_PIPELINE_TRACKER=github needs AI_PIPELINE_GITHUB_TOKEN, or a GitHub App"
            " (AI_PIPELINE_GITHUB_APP_ID, AI_PIPELINE_GITHUB_APP_INSTALLATION_ID and its"
            " private key)"
        )
    return TokenAuth(settings.github_token.get_secret_value())


def _private_key(settings: Settings) -> str:
    if settings.github_app_private_key is not None:
        return settings.github_app_private_key.get_secret_value()
    if settings.github_app_private_key_file:
        return Path(settings.github_app_private_key_file).read_text()
    raise ValueError(
        "a GitHub App needs AI_PIPELINE_GITHUB_APP_PRIVATE_KEY (the PEM) or"
        " AI_PIPELINE_GITHUB_APP_PRIVATE_KEY_FILE"
    )
