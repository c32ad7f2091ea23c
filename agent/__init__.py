"""knowd's agent, the composition root: daemon, CLI, HTTP API, configuration and the model backends
that it picks and hands to the graphs (docs/architecture.md)."""
