"""<linux/capability.h>, <linux/securebits.h>: capabilities, their ABI versions and the securebits."""

NGROUPS_MAX = 65536
CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID = 0, 1, 2, 3, 4
CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_LINUX_IMMUTABLE = 5, 6, 7, 8, 9
CAP_SYS_ADMIN, CAP_SYS_RESOURCE, CAP_MKNOD, CAP_MAC_OVERRIDE = 21, 24, 27, 32
CAP_SYS_NICE = 23
CAP_LAST_CAP = 40                # CAP_CHECKPOINT_RESTORE (Linux 5.9 on)
# securebits (linux/securebits.h): each bit, and above it the bit that locks it
SECURE_NOROOT, SECURE_NO_SETUID_FIXUP, SECURE_KEEP_CAPS = 1 << 0, 1 << 2, 1 << 4
SECURE_ALL_BITS = 0x55           # with SECURE_NO_CAP_AMBIENT_RAISE
CAP_V1, CAP_V2, CAP_V3 = 0x19980330, 0x20071026, 0x20080522
