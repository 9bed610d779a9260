"""DevStack's local.conf ``[[post-config|$NOVA_CONF]]`` sections, merged into config files.

The merge happens in memory, right after a template is rendered and before the
file is compared and written, so a re-run with the same local.conf changes
nothing (and restarts nothing).  The last value wins; comments are kept.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
KEY = re.compile(r"^\s*([^=#;\s][^=]*?)\s*=")


def merge_ini(text: str, entries: Iterable[tuple[str, str, str]]) -> str:
    """Set each (section, key, value) in an INI text: replace the key in place, or add it."""
    lines = text.splitlines()
    for section, key, value in entries:
        lines = _set(lines, section, key, value)
    return "\n".join(lines) + "\n"


def _set(lines: list[str], section: str, key: str, value: str) -> list[str]:
    new_line = f"{key} = {value}"
    current = None
    last_line_of_section = None
    for index, line in enumerate(lines):
        match = SECTION.match(line)
        if match:
            current = match.group(1).strip()
            if current == section:
                last_line_of_section = index
            continue
        if current == section:
            if line.strip():
                last_line_of_section = index
            key_match = KEY.match(line)
            if key_match and key_match.group(1) == key:
                return lines[:index] + [new_line] + lines[index + 1:]
    if last_line_of_section is None:
        return lines + ["", f"[{section}]", new_line]
    return lines[:last_line_of_section + 1] + [new_line] + lines[last_line_of_section + 1:]


def entries_for(settings, path: str | Path) -> list[tuple[str, str, str]]:
    path = str(path)
    return [(e.section, e.key, e.value) for e in settings.post_config
            if e.phase == "post-config" and str(e.target) == path]
