"""<asm-generic/resource.h>: resource limits and usage."""

RLIM_INFINITY = (1 << 64) - 1
RLIMIT_STACK, RLIMIT_NPROC, RLIMIT_NOFILE, RLIM_NLIMITS = 3, 6, 7, 16
RUSAGE_SELF, RUSAGE_CHILDREN, RUSAGE_THREAD = 0, -1, 1
