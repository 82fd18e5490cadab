"""deploy: how guests are made and started — disk images, the guest config,
supervisord include files, the event listener, and the ``skas`` command."""
