"""The `qarun` command line: run a QARun on this machine, watch it, report on it."""
