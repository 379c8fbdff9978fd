"""The ``t2t`` command line."""
