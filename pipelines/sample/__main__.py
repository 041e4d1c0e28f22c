"""`python -m pipelines.sample`: see `pipelines.sample.cli`."""

from pipelines.sample.cli import main

raise SystemExit(main())
