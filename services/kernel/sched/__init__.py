"""Tasks and processes: the process tree, signals and their frames, fork,
exec, exit and wait, timers.  Imports abi, core, mm and fs."""
