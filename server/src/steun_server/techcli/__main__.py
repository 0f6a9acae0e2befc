"""``python -m steun_server.techcli``: the technician commands on their own (also the ProxyCommand)."""

import sys

from .cli import main

sys.exit(main())
