"""What is installed in the services' venv."""
from __future__ import annotations

from importlib.metadata import PathDistribution
from pathlib import Path


def installed_version(venv: Path, distribution: str) -> str:
    """The version of a distribution in the services' venv ("unknown" before it is installed).

    Database syncs are keyed on it: they run again when the installed code changes.
    """
    dists = list((venv / "lib").glob(f"python3*/site-packages/{distribution}-*.dist-info"))
    return PathDistribution(dists[0]).version if dists else "unknown"
