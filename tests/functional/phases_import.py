"""Import a phase module by name, with the pipeline's own loader."""
from minstack.pipeline import phase_module  # noqa: F401  (re-exported for the tests)


def rabbit_phase():
    return phase_module("rabbit")
