"""The VFS: mounts, lookup, permissions, open files, fd tables, pipes,
poll/epoll/eventfd objects, the inode and filesystem bases, and the page
cache of file data userspace maps.  Imports abi, core and mm."""
