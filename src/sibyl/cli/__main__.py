"""``python -m sibyl.cli``."""

from sibyl.cli import main

main()
