"""sigio: the host side of the guest's console (UML's write-SIGIO thread).

In a nutshell: guest output arrives from the kernel as numbered
``console_write`` messages and is written, complete and in order, to this
process's stdout (a foreground ``skas run``) or to the guest's console log
(under supervisord) as the host side becomes writable; each is acknowledged
once written.  It never interprets the bytes: line discipline is the kernel's.
"""
