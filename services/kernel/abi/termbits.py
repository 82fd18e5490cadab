"""<asm-generic/termbits.h>, <asm-generic/termbits-common.h>, <linux/tty.h>:
struct termios and its flags, the special characters, what tcflush and
tcflow take, and the pty devices' numbers."""

NCCS = 19
# c_cc indices
VINTR, VQUIT, VERASE, VKILL, VEOF, VTIME, VMIN, VSWTC = 0, 1, 2, 3, 4, 5, 6, 7
VSTART, VSTOP, VSUSP, VEOL, VREPRINT, VDISCARD, VWERASE, VLNEXT, VEOL2 = range(8, 17)
# c_iflag
IGNBRK, BRKINT, IGNPAR, PARMRK, INPCK, ISTRIP = 0o1, 0o2, 0o4, 0o10, 0o20, 0o40
INLCR, IGNCR, ICRNL, IUCLC, IXON, IXANY, IXOFF, IMAXBEL, IUTF8 = (
    0o100, 0o200, 0o400, 0o1000, 0o2000, 0o4000, 0o10000, 0o20000, 0o40000)
# c_oflag
OPOST, OLCUC, ONLCR, OCRNL, ONOCR, ONLRET = 0o1, 0o2, 0o4, 0o10, 0o20, 0o40
TABDLY, XTABS = 0o14000, 0o14000
# c_cflag
CBAUD, B38400, CSIZE, CS8, CREAD, PARENB, HUPCL = 0o10017, 0o17, 0o60, 0o60, 0o200, 0o400, 0o2000
# c_lflag
ISIG, ICANON, ECHO, ECHOE, ECHOK, ECHONL, NOFLSH, TOSTOP = (
    0o1, 0o2, 0o10, 0o20, 0o40, 0o100, 0o200, 0o400)
ECHOCTL, ECHOPRT, ECHOKE, FLUSHO, PENDIN, IEXTEN, EXTPROC = (
    0o1000, 0o2000, 0o4000, 0o10000, 0o40000, 0o100000, 0o200000)
# tcflush's and tcflow's arguments
TCIFLUSH, TCOFLUSH, TCIOFLUSH = 0, 1, 2
TCOOFF, TCOON, TCIOFF, TCION = 0, 1, 2, 3
N_TTY = 0
N_TTY_BUF_SIZE = 4096

TTY_MAJOR = 4                    # /dev/tty0, the console's line (UML's stdio console)
TTYAUX_MAJOR = 5                 # /dev/tty 5:0, /dev/console 5:1, /dev/ptmx 5:2
UNIX98_PTY_SLAVE_MAJOR = 136     # /dev/pts/N
NR_UNIX98_PTY_MAX = 4096         # /proc/sys/kernel/pty/max's default
DEVPTS_SUPER_MAGIC = 0x1CD1
