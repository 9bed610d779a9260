"""One module per service or concern, each exporting PHASE (see minstack/phase.py).

minstack.pipeline.load_phases() imports them all; tests import one with
minstack.pipeline.phase_module(name).
"""
