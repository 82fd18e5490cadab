/* reboot(2), raw (glibc's reboot() passes its own magic numbers).
   "errors": the refusals, the same natively and in a guest (none of them
   reaches a command, so the host is safe running them as root); "cad": Ctrl-Alt-Del's setting
   off then on ("cad-off": off); "efault": RESTART2's
   string at a bad address; "halt", "poweroff", "restart", "restart2 CMD":
   the guest ends (or boots again) and the call never returns. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/reboot.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long rb(long m1, long m2, long cmd, const void *arg) {
    return syscall(SYS_reboot, m1, m2, cmd, arg);
}

static void show(const char *what, long r) {
    printf("%s: %s\n", what, r == 0 ? "0" : strerrorname_np(errno));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *mode = argc > 1 ? argv[1] : "errors";
    const long M1 = LINUX_REBOOT_MAGIC1, M2 = LINUX_REBOOT_MAGIC2;
    if (!strcmp(mode, "errors")) {
        show("bad magic1", rb(0x1234, M2, LINUX_REBOOT_CMD_HALT, NULL));
        show("bad magic2", rb(M1, 42, LINUX_REBOOT_CMD_HALT, NULL));
        show("magic1 high bits", rb(M1 | 0x500000000L, LINUX_REBOOT_MAGIC2C, 0x55, NULL));
        show("unknown command", rb(M1, LINUX_REBOOT_MAGIC2A, 0x12345678, NULL));
        pid_t pid = fork();
        if (pid == 0) {                 /* without CAP_SYS_BOOT: before the magic */
            if (setuid(65534) != 0)
                _exit(1);
            show("as nobody", rb(M1, M2, LINUX_REBOOT_CMD_HALT, NULL));
            show("as nobody, bad magic", rb(0, 0, LINUX_REBOOT_CMD_HALT, NULL));
            _exit(0);
        }
        waitpid(pid, NULL, 0);
        return 0;
    }
    if (!strcmp(mode, "cad") || !strcmp(mode, "cad-off")) {
        show("cad off", rb(M1, M2, LINUX_REBOOT_CMD_CAD_OFF, NULL));
        if (!strcmp(mode, "cad"))
            show("cad on", rb(M1, M2, LINUX_REBOOT_CMD_CAD_ON, NULL));
        return 0;
    }
    if (!strcmp(mode, "efault")) {
        show("restart2 at a bad address", rb(M1, M2, LINUX_REBOOT_CMD_RESTART2, (void *)8));
        return 0;
    }
    long cmd = !strcmp(mode, "halt") ? LINUX_REBOOT_CMD_HALT
             : !strcmp(mode, "poweroff") ? LINUX_REBOOT_CMD_POWER_OFF
             : !strcmp(mode, "restart") ? LINUX_REBOOT_CMD_RESTART
             : LINUX_REBOOT_CMD_RESTART2;
    sync();
    show("returned", rb(M1, M2, cmd, argc > 2 ? argv[2] : NULL));
    return 1;
}
