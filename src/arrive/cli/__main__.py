"""``python -m arrive.cli``: the same as the ``arrive`` command."""

from arrive.cli.main import main

main()
