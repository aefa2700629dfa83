"""``python -m kestrel`` is the ``kestrel`` command."""

from kestrel.cli import main

main()
