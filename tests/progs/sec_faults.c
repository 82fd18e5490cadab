/* Calls whose kernel handlers tests/test_kernel_faults.py makes fail (it
   runs the kernel in its own process): each call ends with an errno, or
   its task with SIGSEGV (tried in a child), and the program goes on. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include "sec_try.h"

static void report(const char *name, long r) {
    printf("%s: %s\n", name, r < 0 ? strerrorname_np(errno) : "ok");
}

static void say(const char *s) { write(1, s, strlen(s)); }

static void call(void *nr) {
    syscall((long)nr, 0, 0, 0);
    say("returned");
    _exit(0);
}

static void on_signal(int sig) { (void)sig; say("handler ran; "); }

static void with_handler(void *sig) {
    signal((long)sig, on_signal);
    raise((long)sig);
    say("returned");
    _exit(0);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    report("getppid", syscall(SYS_getppid));
    report("getuid", syscall(SYS_getuid));
    report("getgid", syscall(SYS_getgid));
    report("geteuid", syscall(SYS_geteuid));
    report("getegid", syscall(SYS_getegid));
    try("getpgrp", call, (void *)SYS_getpgrp);
    try("uname", call, (void *)SYS_uname);
    try("SIGUSR2", with_handler, (void *)SIGUSR2);
    try("SIGUSR1", with_handler, (void *)SIGUSR1);
    report("getpid", syscall(SYS_getpid));
    return 0;
}
