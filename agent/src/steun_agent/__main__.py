"""``python -m steun_agent`` is ``steun-agent``."""

from .cli import main

raise SystemExit(main())
