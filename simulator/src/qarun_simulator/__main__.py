"""`python -m qarun_simulator`: the same as the `qarun-llm-sim` console script."""

from qarun_simulator.server import main

raise SystemExit(main())
