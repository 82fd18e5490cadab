/* Signals and waits cannot reach outside the guest: argv[1] is a host pid
   that exists (the test runner). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(int r) { return r == 0 ? "ok" : errno == ESRCH ? "ESRCH" : errno == ECHILD ? "ECHILD" : strerror(errno); }

static volatile int usr1;
static void h(int s) { (void)s; usr1++; }

int main(int argc, char **argv) {
    pid_t host = argc > 1 ? atoi(argv[1]) : 1;
    printf("kill host pid: %s\n", err(kill(host, 0)));
    /* kill(-1) reaches every guest process but init and the caller: here, none */
    int r = kill(-1, SIGUSR2);
    printf("kill -1: %s\n", r == -1 && errno == ESRCH ? "only guest" : "reached something");
    printf("tgkill host tid: %s\n", err(syscall(SYS_tgkill, host, host, 0)));
    printf("wait other: %s\n", err(waitpid(host, NULL, WNOHANG)));
    printf("getpgid host: %s\n", err(getpgid(host) < 0 ? -1 : 0));
    signal(SIGUSR1, h);
    kill(0, SIGUSR1);
    printf("kill self pgrp ok: %d\n", usr1);
    return 0;
}
