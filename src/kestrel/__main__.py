"""``python -m kestrel`` is the ``kestrel`` command."""

from kestrel.cli import console_main

console_main()
