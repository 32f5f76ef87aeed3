"""``python -m natgrad`` is the ``natgrad`` command."""

from natgrad.cli import main

main()
