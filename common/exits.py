"""The kernel service's exit codes that mean something to whoever started
it (``skas run``, the supervisord listener), besides the guest's own:
init's exit status, or 128+N when init was killed by signal N."""
BOOT_FAILED = 125     # the guest never ran its init
REBOOT = 250          # the guest asked to boot again (reboot(2), `skas ctl reboot`, sysrq b):
                      # start all four services anew.  An init exiting with 250 reads as a
                      # reboot too (as 125 reads as a failed boot): above any 128+signal.
