"""What every layer above uses: errors, the answers a handler may give,
credentials, wait queues, eager coroutines, resource refusals, and the
KernelServices protocol a task reaches its kernel through.  Imports abi only."""
