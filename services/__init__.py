"""The four host processes of a guest: kernel, userspace, ubd_io, sigio."""
