"""<linux/fcntl.h>, <linux/fs.h>: file flags the kernel's layers share."""

RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
