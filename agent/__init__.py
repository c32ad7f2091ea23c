"""knowd's agent: daemon, CLI, HTTP API, configuration and model backends."""
