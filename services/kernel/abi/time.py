"""<linux/time.h>: clocks, interval timers and the clock tick user space counts in."""

TIMER_ABSTIME = 1
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
CLK_TCK = 100                       # USER_HZ: what times() and clock_t count
