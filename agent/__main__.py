"""`python -m agent` is the `knowd` command (for a venv without its console script)."""
from agent.cli import main

main()
