"""`python -m agent.cli` is the `knowd` command."""
from agent.cli import main

main()
