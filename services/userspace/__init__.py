"""userspace: the host processes that run guest code (UML's userspace thread).

In a nutshell: this service is the ptrace tracer of every guest process.  It
creates address spaces (stub exec), installs the syscall filter and hands its
seccomp listener to the kernel (which serves the frequent calls there,
without this service), reports each trapped system call to the kernel and
applies the answer (``ret``, ``host``, ``ops``), stops a task when the
kernel asks (``interrupt``), and reports host processes that die.  It owns
host pids and registers; it never decides what a guest system call means —
that is the kernel's.
"""
