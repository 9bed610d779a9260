#!/usr/bin/env python3
"""Stack this host: ./stack.py [--dry-run] [--only PHASE…] [--skip PHASE…] | status | verify"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minstack.bootstrap import reexec_in_venv  # noqa: E402  (standard library only)

if __name__ == "__main__":
    if "--bootstrap-only" in sys.argv:
        reexec_in_venv(__file__)
        sys.exit(0)
    reexec_in_venv(__file__)
    from minstack.cli import stack_main  # noqa: E402
    sys.exit(stack_main(sys.argv[1:]))
