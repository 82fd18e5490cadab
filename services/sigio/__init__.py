"""sigio: the host side of the guest's console (UML's write-SIGIO thread).

In a nutshell: guest output arrives from the kernel as numbered
``console_write`` messages and is written, complete and in order, to this
process's stdout (a foreground ``skas run``), to the guest's console log,
or to the log and the line ``skas console`` attaches to (under
supervisord), as the host side takes it; each is acknowledged once
written.  Host input (its stdin with ``skas run -i``, or the attached
client's keys) goes to the kernel as ``console_input``, one piece at a
time, and the host's window size as ``console_winsize``.  It never
interprets the bytes: line discipline is the kernel's.
"""
