"""How a handler fails: raise Errno(errno.X); the dispatcher returns -X.

Any other exception out of a handler is a kernel bug: the dispatcher logs it
and the call ends with ``bug_errno``'s errno."""
import errno as _errno


class Errno(Exception):
    def __init__(self, code: int):
        super().__init__(_errno.errorcode.get(code, str(code)))
        self.code = code


def bug_errno(exc: BaseException) -> int:
    """What a call whose handler failed with exc (not Errno) ends with:
    ENOMEM when the kernel ran out of memory, EINVAL for a number too big
    for the host to take, EIO for any other bug."""
    if isinstance(exc, MemoryError):
        return _errno.ENOMEM
    if isinstance(exc, OverflowError):
        return _errno.EINVAL
    return _errno.EIO
