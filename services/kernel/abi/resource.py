"""<asm-generic/resource.h>: resource limits and usage."""

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_STACK, RLIMIT_CORE, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_MEMLOCK = 3, 4, 6, 7, 8
RLIMIT_SIGPENDING = 11
RLIM_NLIMITS = 16
NR_OPEN = 1 << 20        # Linux's fs.nr_open: no RLIMIT_NOFILE above it
RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1
