"""<linux/pidfd.h>: pidfd_open's and pidfd_send_signal's flags, and
waitid's P_PIDFD."""

from services.kernel.abi.fcntl import O_EXCL, O_NONBLOCK

PIDFD_NONBLOCK = O_NONBLOCK
PIDFD_THREAD = O_EXCL
PIDFD_SIGNAL_THREAD, PIDFD_SIGNAL_THREAD_GROUP, PIDFD_SIGNAL_PROCESS_GROUP = 1, 2, 4
P_PIDFD = 3
