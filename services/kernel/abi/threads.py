"""<linux/threads.h>: how far pids go."""

PID_MAX = 1 << 22          # PID_MAX_LIMIT, pid_max on 64-bit: pids wrap below it
