#!/bin/bash
# A DevStack plugin as DevStack runs it (sourced by stack.sh, as root's shell). minstack must refuse
# to load it (tests/functional/test_bad_input.py, tests/unit/test_plugins.py): this never runs.
if [[ "$1" == "stack" && "$2" == "install" ]]; then
    echo "a DevStack plugin ran" > /tmp/devstack-plugin-ran
fi
