"""Guest memory: reads and writes of a task's address space
(process_vm_readv/writev), bad pointers EFAULT.  Imports abi and core."""
