"""The commands as library functions: each takes its typed configuration, owns its run directory
(:mod:`initopt.output.rundir`) and returns its result; :mod:`initopt.cli` only parses and prints."""
