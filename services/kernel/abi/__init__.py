"""Linux's numbers, flags and limits as the x86_64 ABI fixes them, each
defined once; the bottom layer of the kernel: it imports nothing of it."""
