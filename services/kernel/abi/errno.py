"""<linux/errno.h>: the kernel's own errnos, which a call cut short by a signal shows before the restart rules decide."""

ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK = 512, 513, 514, 516
