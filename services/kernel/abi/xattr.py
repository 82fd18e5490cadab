"""<linux/xattr.h>, <uapi/linux/limits.h>: extended attributes' flags,
namespaces and limits."""

XATTR_CREATE, XATTR_REPLACE = 0x1, 0x2
XATTR_NAME_MAX = 255             # a name, its namespace prefix included
XATTR_SIZE_MAX = 65536           # a value
XATTR_LIST_MAX = 65536           # a list of names
XATTR_USER_PREFIX = b"user."
XATTR_TRUSTED_PREFIX = b"trusted."
XATTR_SECURITY_PREFIX = b"security."
XATTR_SYSTEM_PREFIX = b"system."
XATTR_ARGS_SIZE_VER0 = 16        # struct xattr_args of the *xattrat calls: value, size, flags
