"""<asm-generic/ioctls.h>: the terminal and file ioctls served."""

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TIOCGWINSZ, TIOCSWINSZ, TIOCGPGRP, TIOCSPGRP = 0x5413, 0x5414, 0x540F, 0x5410
FIONREAD = 0x541B
# the ones every file takes (do_vfs_ioctl)
FIONBIO, FIONCLEX, FIOCLEX, FIOASYNC, FIOQSIZE = 0x5421, 0x5450, 0x5451, 0x5452, 0x5460
