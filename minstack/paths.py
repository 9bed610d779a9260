"""Where minstack's own files are."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILES = REPO / "files"
TEMPLATES = FILES / "templates"
PHASES = REPO / "phases"
DEBS = FILES / "debs"
REQUIREMENTS = FILES / "requirements"
CACHE = FILES / "cache"  # downloaded and built images (not in git)


def repo_owner() -> str:
    """Whoever cloned minstack: they source openrc and use the demo key, so those are theirs, not root's."""
    import pwd
    return pwd.getpwuid(REPO.stat().st_uid).pw_name
