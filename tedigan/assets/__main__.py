"""``python -m tedigan.assets [--fetch-npm [--force]]``."""

from tedigan.assets.cli import main

raise SystemExit(main())
