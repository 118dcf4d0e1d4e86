"""``python -m sk_dml``: the ``sk-dml`` command line."""

from .cli import main

raise SystemExit(main())
