"""`python -m cvd_sim` runs the command line."""

from cvd_sim.cli import main

raise SystemExit(main())
