"""How a handler fails: raise Errno(errno.X); the dispatcher returns -X."""
import errno as _errno


class Errno(Exception):
    def __init__(self, code: int):
        super().__init__(_errno.errorcode.get(code, str(code)))
        self.code = code
