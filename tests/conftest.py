"""Options for the functional suite (they live here so `pytest tests/unit tests/functional` sees them)."""


def pytest_addoption(parser):
    group = parser.getgroup("minstack")
    group.addoption("--stack", action="store_true",
                    help="stack this host with --localrc first; also run the lifecycle tests "
                         "(re-run, unstack, clean), which end with ./unstack.py --clean")
    group.addoption("--long", action="store_true",
                    help="also run the long reliability tier (tests marked long: re-runs, resume, load)")
    group.addoption("--localrc", default=None,
                    help="the localrc the stack uses (default: tests/functional/localrc)")


def pytest_configure(config):
    config.addinivalue_line("markers", "lifecycle: re-runs, stops or cleans the stack (only with --stack)")
    config.addinivalue_line("markers", "long: the long reliability tier (only with --long; tests/run-long)")
    config.addinivalue_line("markers", "final: runs after every other test, the clean included (the secrets scan)")
