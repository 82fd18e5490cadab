"""ubd_io: the guest's block devices (UML's ubd async IO thread).

In a nutshell: serves numbered devices (``ubd0`` is root) from image files
named in the guest config — READ, WRITE and FLUSH by byte offset, each
answered with the request's id and 0 or -errno.  It owns the image files and
never knows what a filesystem is.
"""
