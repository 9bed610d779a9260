#!/usr/bin/env python3
"""Stop what stack.py started: ./unstack.py [--all] [--clean]"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minstack.bootstrap import reexec_in_venv  # noqa: E402  (standard library only)

if __name__ == "__main__":
    reexec_in_venv(__file__)
    from minstack.cli import unstack_main  # noqa: E402
    sys.exit(unstack_main(sys.argv[1:]))
