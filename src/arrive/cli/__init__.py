"""The ``arrive`` command line."""
