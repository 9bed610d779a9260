"""Where minstack's own files are."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FILES = REPO / "files"
TEMPLATES = FILES / "templates"
PHASES = REPO / "phases"
DEBS = FILES / "debs"
REQUIREMENTS = FILES / "requirements"
CACHE = FILES / "cache"  # downloaded and built images (not in git)
