"""<linux/time.h>, <linux/timerfd.h>: clocks, interval timers, timerfd and the
clock tick user space counts in."""

TIMER_ABSTIME = 1
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
CLOCK_BOOTTIME, CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM = 7, 8, 9
# <linux/timerfd.h>
TFD_TIMER_ABSTIME, TFD_TIMER_CANCEL_ON_SET = 1, 2
TFD_CLOEXEC, TFD_NONBLOCK = 0o2000000, 0o4000
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
CLK_TCK = 100                       # USER_HZ: what times() and clock_t count
