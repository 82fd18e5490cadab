/* Nice values and scheduling policies as Linux answers them: as root, then
   as uid 1000 (what privilege allows and what it does not), and across a
   fork with SCHED_RESET_ON_FORK.  Prints results and errno names only. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *err(long r) {
    static char buf[32];
    if (r >= 0) { snprintf(buf, sizeof buf, "%ld", r); return buf; }
    return errno == EPERM ? "EPERM" : errno == EACCES ? "EACCES" : errno == EINVAL ? "EINVAL"
         : errno == ESRCH ? "ESRCH" : errno == EFAULT ? "EFAULT" : strerror(errno);
}

static void show(const char *who) {
    struct sched_param p = {0};
    struct timespec ts;
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, 0);
    sched_getparam(0, &p);
    sched_rr_get_interval(0, &ts);
    printf("%s: nice %d policy %d prio %d rr %ld.%09ld\n", who, nice,
           sched_getscheduler(0), p.sched_priority, (long)ts.tv_sec, ts.tv_nsec);
}

int main(void) {
    struct sched_param p = {0};
    show("start");
    printf("max fifo %d rr %d other %d; min fifo %d other %d; bad %s\n",
           sched_get_priority_max(SCHED_FIFO), sched_get_priority_max(SCHED_RR),
           sched_get_priority_max(SCHED_OTHER), sched_get_priority_min(SCHED_FIFO),
           sched_get_priority_min(SCHED_OTHER), err(sched_get_priority_max(42)));
    printf("setpriority 5: %s\n", err(setpriority(PRIO_PROCESS, 0, 5)));
    printf("setpriority -3 as root: %s\n", err(setpriority(PRIO_PROCESS, 0, -3)));
    printf("setpriority 100 clamps: %s\n", err(setpriority(PRIO_PROCESS, 0, 100)));
    show("clamped");
    printf("bad which: %s; no such pid: %s; pgrp: %s\n", err(setpriority(7, 0, 1)),
           err(getpriority(PRIO_PROCESS, 99999)), err(setpriority(PRIO_PGRP, 0, 4)));
    p.sched_priority = 5;
    printf("other prio 5: %s\n", err(sched_setscheduler(0, SCHED_OTHER, &p)));
    p.sched_priority = 0;
    printf("batch: %s\n", err(sched_setscheduler(0, SCHED_BATCH, &p)));
    show("batch");
    printf("idle+reset: %s\n", err(sched_setscheduler(0, SCHED_IDLE | SCHED_RESET_ON_FORK, &p)));
    printf("getscheduler: %#x\n", sched_getscheduler(0));
    setpriority(PRIO_PROCESS, 0, 7);
    pid_t pid = fork();
    if (pid == 0) {
        show("child of reset");
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    printf("bad param: %s; negative pid: %s\n",
           err(syscall(SYS_sched_setscheduler, 0, SCHED_OTHER, NULL)),
           err(sched_getscheduler(-1)));
    int held[2];
    pipe(held);
    pid_t rootkid = fork();
    if (rootkid == 0) {          /* stays root until the pipe's end closes */
        char c;
        close(held[1]);
        read(held[0], &c, 1);
        _exit(0);
    }
    close(held[0]);
    if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)) { perror("setresuid"); return 1; }
    p.sched_priority = 0;
    printf("user drops reset: %s\n", err(sched_setscheduler(0, SCHED_OTHER, &p)));
    printf("user keeps reset: %s\n",
           err(sched_setscheduler(0, SCHED_OTHER | SCHED_RESET_ON_FORK, &p)));
    p.sched_priority = 1;
    printf("user fifo: %s\n", err(sched_setscheduler(0, SCHED_FIFO, &p)));
    printf("user nice down: %s; up: %s\n", err(setpriority(PRIO_PROCESS, 0, 2)),
           err(setpriority(PRIO_PROCESS, 0, 12)));
    printf("user sets root's: %s\n", err(setpriority(PRIO_PROCESS, rootkid, 15)));
    show("user");
    close(held[1]);
    waitpid(rootkid, NULL, 0);
    return 0;
}
