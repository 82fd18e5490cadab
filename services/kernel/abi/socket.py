"""<linux/socket.h>, <linux/net.h>, <asm-generic/socket.h>, <linux/un.h>,
<linux/sockios.h>: socket families, types, message flags, options and the
control-message types of AF_UNIX."""

AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_MAX = 0, 1, 2, 10, 16, 46
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, SOCK_SEQPACKET, SOCK_MAX = 1, 2, 3, 5, 11
SOCK_TYPE_MASK = 0xF
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2

MSG_OOB, MSG_PEEK, MSG_DONTROUTE, MSG_CTRUNC = 0x1, 0x2, 0x4, 0x8
MSG_TRUNC, MSG_DONTWAIT, MSG_EOR, MSG_WAITALL = 0x20, 0x40, 0x80, 0x100
MSG_NOSIGNAL, MSG_MORE, MSG_WAITFORONE, MSG_CMSG_CLOEXEC = 0x4000, 0x8000, 0x10000, 0x40000000

SOL_SOCKET = 1
SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE = 2, 3, 4, 7, 8, 9
SO_PASSCRED, SO_PEERCRED, SO_ACCEPTCONN, SO_PROTOCOL, SO_DOMAIN = 16, 17, 30, 38, 39
SCM_RIGHTS, SCM_CREDENTIALS = 1, 2
SCM_MAX_FD = 253                 # fds in one message

SIOCINQ, SIOCOUTQ = 0x541B, 0x5411     # FIONREAD and TIOCOUTQ by their socket names

UNIX_PATH_MAX = 108              # sun_path's size: a sockaddr_un is 110 bytes
SOCKADDR_STORAGE = 128           # the longest address a call copies in
SOMAXCONN = 4096                 # /proc/sys/net/core/somaxconn: listen's backlog bound
