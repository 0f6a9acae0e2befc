"""steun_agent: see the package README."""
