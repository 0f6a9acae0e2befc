"""The fleet: agents' control plane (``/agent/ws``), presence, devices, groups and enrollment tokens."""
