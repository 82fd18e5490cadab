"""The services' exit codes that mean something to whoever started them
(``skas run``, supervisord and its listener).  The kernel's, besides the
guest's own (init's exit status, or 128+N when init was killed by signal N):"""
BOOT_FAILED = 125     # the guest never ran its init
REBOOT = 250          # the guest asked to boot again (reboot(2), `skas ctl reboot`, sysrq b):
                      # start all four services anew.  An init exiting with 250 reads as a
                      # reboot too (as 125 reads as a failed boot): above any 128+signal.

# ubd_io's and sigio's, when they cannot serve as configured (a disk another
# guest is using, an endpoint taken): sysexits' EX_CONFIG.  Starting them
# again would not help, so supervisord does not (deploy/supervisor.py) and
# the listener stops the guest, whose kernel would wait for them for ever.
CONFIG = 78
