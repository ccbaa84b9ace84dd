"""The ``crowdcount`` command line: thin click commands that parse, call the library and print.

Nothing imports this package; it imports the rest. Errors become exit codes in one place
(:mod:`crowdcount.cli.main`).
"""
