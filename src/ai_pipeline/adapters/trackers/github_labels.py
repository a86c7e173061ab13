"""How the labels the pipeline creates look on GitHub: a colour and a description each.

Only labels the repository lacks are created (``GitHubOptions.labels="create"``); a team's
own label keeps its colour. Colours follow GitHub's defaults where one exists.
"""

from __future__ import annotations

DEFAULT_COLOR = "ededed"

_STYLES: dict[str, tuple[str, str]] = {
    "bug": ("d73a4a", "Something isn't working"),
    "feature": ("a2eeef", "New feature or request"),
    "enhancement": ("a2eeef", "New feature or request"),
    "question": ("d876e3", "Further information is requested"),
    "duplicate": ("cfd3d7", "This issue or pull request already exists"),
    "needs-triage": ("fbca04", "Triage was unsure: a maintainer should decide"),
    "needs-info": ("fef2c0", "The reporter is asked for more information"),
    "security": ("b60205", "Security-sensitive: handle privately"),
}
_PREFIXES: dict[str, tuple[str, str]] = {
    "priority:": ("e99695", "Priority set by triage"),
    "severity:": ("f9d0c4", "Severity set by triage"),
    "category:": ("c5def5", "Component or area set by triage"),
    "type:": ("bfdadc", "Issue type set by triage"),
}


def label_style(name: str) -> tuple[str, str]:
    """(colour as six hex digits, description) for a label the pipeline creates."""
    lowered = name.lower()
    if lowered in _STYLES:
        return _STYLES[lowered]
    for prefix, style in _PREFIXES.items():
        if lowered.startswith(prefix):
            return style
    return DEFAULT_COLOR, "Added by AI Pipeline triage"
