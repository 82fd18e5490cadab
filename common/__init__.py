"""What two or more services share: the wire protocol, the ZeroMQ transport,
the guest configuration and logging.  Nothing here knows about guests'
system calls, ptrace or filesystems."""
