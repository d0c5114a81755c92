"""`python -m aimm_operator`: run the operator (same flags as `aimm operator run`)."""

from aimm_operator.cli import main

raise SystemExit(main())
