"""Devices: the console, the memory devices (/dev/null ...) and the ubd
block device (ubd_io's client).  Imports abi, core, mm, fs and sched; not
fsimpl."""
