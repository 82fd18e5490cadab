"""The decoded syscall log (`skas run --strace`): imported only when it is on."""
