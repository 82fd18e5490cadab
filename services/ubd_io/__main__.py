"""ubd_io: the guest's block devices (UML's ubd async IO thread).

In a nutshell: serves numbered devices (``ubd0`` is root) from image files
named in the guest config, each a plain image or a UML COW overlay over a
backing file that is never written (``OVERLAY,BACKING``).  READ, WRITE,
FLUSH, DISCARD and WRITE_ZEROES by byte offset, each answered with the
request's id and 0 or -errno, or ``busy`` when its bounded queue is full;
a local kernel's WRITE may instead name where its data is in the kernel's
shared buffer (``write_shared``, common/shared_buffer.py).
Requests are idempotent, so the kernel resends freely.  It owns the image
files and never knows what a filesystem is.
"""
from common import phases
phases.mark("ubd_io", "start")
from common.service import main
from services.ubd_io.service import run

main("ubd_io", run, drop_now=False)     # its images are opened first
