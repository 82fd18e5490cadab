"""The filesystems: ext2 (the guest's disks), tmpfs and procfs.  Imports
abi, core, mm, fs and sched (procfs shows tasks); not drivers."""
