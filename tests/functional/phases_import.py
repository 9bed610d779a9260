"""Import a phase module by name (phases/ is a folder of modules, not a package)."""
import importlib.util

from minstack.paths import PHASES


def phase_module(name: str):
    spec = importlib.util.spec_from_file_location(f"test_phases.{name}", PHASES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rabbit_phase():
    return phase_module("rabbit")
