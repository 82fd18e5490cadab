"""Linux's numbers, flags and limits as the x86_64 ABI fixes them, each
defined once; the bottom layer of the kernel: it imports nothing of it.

Its modules are named for the Linux headers the numbers come from (fcntl,
signal, resource ...); they are only ever imported by their full names
(``services.kernel.abi.signal``), so the standard library's modules of the
same names are not hidden."""
