/* Hostile pidfd use, natively and in a guest: bad pointers (EFAULT, and
 * nothing made or leaked: no child, no fd), pidfd_getfd across users and
 * against processes that are not dumpable or hold more capabilities
 * (EPERM), pidfds of reaped processes (ESRCH, ECHILD, POLLHUP), fds that
 * are not the guest's, and floods bounded by RLIMIT_NOFILE.  Runs as root;
 * prints no pid or fd number, only whether they match. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FLOOD 128               /* RLIMIT_NOFILE for the floods */
#define KIDS 48

static const char *err(long r) {
    return r >= 0 ? "ok" : strerrorname_np(errno);
}

#define CHECK(what, call) printf("%-52s %s\n", what, err(call))

static int pidfd_open(pid_t pid, unsigned flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int send_signal(int fd, int sig, void *info, unsigned flags) {
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, info, flags);
}

static int getfd(int fd, int target, unsigned flags) {
    return (int)syscall(SYS_pidfd_getfd, fd, target, flags);
}

/* The fd the next open would get: unchanged means nothing leaked. */
static int next_fd(void) {
    int fd = dup(0);
    close(fd);
    return fd;
}

/* A child that pauses until killed, as uid (if not 0), keeping root's
 * capabilities across the change if asked, dumpable or not. */
static pid_t paused(uid_t uid, int keepcaps, int dumpable) {
    int ready[2];
    pipe(ready);
    pid_t pid = fork();
    if (pid == 0) {
        int p[2];
        pipe(p);        /* an fd worth taking: p[0] is 5 in every child */
        prctl(PR_SET_KEEPCAPS, keepcaps);
        if (uid && (setresgid(uid, uid, uid) || setresuid(uid, uid, uid))) _exit(2);
        prctl(PR_SET_DUMPABLE, dumpable);
        write(ready[1], "r", 1);
        for (;;) pause();
    }
    char c;
    read(ready[0], &c, 1);
    close(ready[0]);
    close(ready[1]);
    return pid;
}

static void test_bad_pointers(void) {
    printf("-- bad pointers\n");
    pid_t kid = paused(0, 0, 1);
    /* signal 0 throughout: a signal that ends the child would race the waits */
    int fd = pidfd_open(kid, 0);
    CHECK("pidfd_send_signal, siginfo at 8", send_signal(fd, 0, (void *)8, 0));
    CHECK("pidfd_send_signal, siginfo at -1", send_signal(fd, 0, (void *)-1, 0));
    /* a siginfo whose last bytes run into a page that cannot be read */
    char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    mprotect(two + 4096, 4096, PROT_NONE);
    siginfo_t *edge = (siginfo_t *)(two + 4096 - 48);
    memset(edge, 0, 48);
    edge->si_signo = 0;
    edge->si_code = SI_QUEUE;
    CHECK("  ending on a PROT_NONE page, a known code", send_signal(fd, 0, edge, 0));
    edge->si_code = -20;
    CHECK("  ending on a PROT_NONE page, an unknown code", send_signal(fd, 0, edge, 0));
    siginfo_t tail;
    memset(&tail, 0, sizeof tail);
    tail.si_signo = 0;
    tail.si_code = -20;
    ((char *)&tail)[100] = 1;
    CHECK("  an unknown code, bytes past the fields", send_signal(fd, 0, &tail, 0));
    tail.si_code = SI_QUEUE;
    CHECK("  SI_QUEUE, bytes past the fields", send_signal(fd, 0, &tail, 0));
    CHECK("waitid P_PIDFD, infop at 8 while it runs", waitid(P_PIDFD, fd, (void *)8, WEXITED | WNOHANG));
    send_signal(fd, SIGKILL, NULL, 0);
    siginfo_t si;
    waitid(P_PIDFD, fd, &si, WEXITED | WNOWAIT);
    CHECK("waitid P_PIDFD of the dead, infop at 8", waitid(P_PIDFD, fd, (void *)8, WEXITED));
    CHECK("  then: reaped all the same", waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG));
    close(fd);

    int before = next_fd();
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_PIDFD;
    a.exit_signal = SIGCHLD;
    a.pidfd = 8;
    long r = syscall(SYS_clone3, &a, sizeof a);
    if (r == 0) _exit(0);
    const char *what = err(r);
    printf("%-52s %s, no child %d, no fd %d\n", "clone3, pidfd at 8", what,
           waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, next_fd() == before);
    a.pidfd = (uintptr_t)"read-only";
    r = syscall(SYS_clone3, &a, sizeof a);
    if (r == 0) _exit(0);
    what = err(r);
    printf("%-52s %s, no child %d, no fd %d\n", "clone3, pidfd in read-only memory", what,
           waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, next_fd() == before);
    CHECK("clone3, args at 8", syscall(SYS_clone3, (void *)8, sizeof a));
    r = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, (void *)8, 0, 0);
    if (r == 0) _exit(0);
    what = err(r);
    printf("%-52s %s, no child %d, no fd %d\n", "clone, pidfd at 8", what,
           waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, next_fd() == before);
}

static void test_permissions(void) {
    printf("-- pidfd_getfd across users\n");
    pid_t other = paused(2000, 0, 1), same = paused(1000, 0, 1);
    pid_t undumpable = paused(1000, 0, 0), capable = paused(1000, 1, 1);
    int fo = pidfd_open(other, 0), fs = pidfd_open(same, 0), fu = pidfd_open(undumpable, 0),
        fc = pidfd_open(capable, 0);
    int root = pidfd_open(getpid(), 0);
    pid_t user = fork();
    if (user == 0) {
        if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)) _exit(2);
        CHECK("as 1000: of uid 2000's", getfd(fo, 5, 0));
        CHECK("as 1000: of root's", getfd(root, 0, 0));
        CHECK("as 1000: of uid 1000's", close(getfd(fs, 5, 0)));
        CHECK("as 1000: of uid 1000's, not dumpable", getfd(fu, 5, 0));
        CHECK("as 1000: of uid 1000's that kept root's caps", getfd(fc, 5, 0));
        CHECK("as 1000: SIGKILL to uid 2000", send_signal(fo, SIGKILL, NULL, 0));
        fflush(stdout);
        _exit(0);
    }
    waitpid(user, NULL, 0);
    CHECK("as root: of uid 2000's", close(getfd(fo, 5, 0)));
    CHECK("as root: of uid 1000's, not dumpable", close(getfd(fu, 5, 0)));
    for (int *p = (int[]){fo, fs, fu, fc, root, -1}; *p >= 0; p++) {
        siginfo_t si;
        if (*p != root) {
            send_signal(*p, SIGKILL, NULL, 0);
            waitid(P_PIDFD, *p, &si, WEXITED);
        }
        close(*p);
    }
}

static void test_reaped(void) {
    printf("-- reaped\n");
    pid_t kid = fork();
    if (kid == 0) _exit(0);
    int fd = pidfd_open(kid, 0);
    waitpid(kid, NULL, 0);
    siginfo_t si;
    CHECK("pidfd_send_signal", send_signal(fd, SIGKILL, NULL, 0));
    CHECK("pidfd_send_signal, signal 0", send_signal(fd, 0, NULL, 0));
    CHECK("pidfd_send_signal, its group", send_signal(fd, SIGKILL, NULL, 4));
    CHECK("pidfd_getfd", getfd(fd, 0, 0));
    CHECK("waitid", waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG));
    CHECK("pidfd_open of its pid", pidfd_open(kid, 0));
    struct pollfd p = {fd, POLLIN, 0};
    int n = poll(&p, 1, 0);
    printf("poll: %d, hung up %d\n", n, !!(p.revents & POLLHUP));
    close(fd);
}

static void test_not_the_guests(void) {
    printf("-- fds that are not pidfds\n");
    int self = pidfd_open(getpid(), 0);
    /* 15: the scratch's host fd in a guest process; no guest fd */
    CHECK("pidfd_getfd of its own fd 15", getfd(self, 15, 0));
    CHECK("pidfd_getfd of its own fd 1000000", getfd(self, 1000000, 0));
    CHECK("pidfd_getfd, pidfd -1", getfd(-1, 0, 0));
    CHECK("pidfd_send_signal, pidfd 15", send_signal(15, 0, NULL, 0));
    CHECK("waitid P_PIDFD, fd 15", waitid(P_PIDFD, 15, NULL, WEXITED | WNOHANG));
    CHECK("waitid P_PIDFD, fd INT_MAX", waitid(P_PIDFD, 0x7fffffff, NULL, WEXITED | WNOHANG));
    close(self);
}

static void test_floods(void) {
    printf("-- floods\n");
    struct rlimit rl = {FLOOD, FLOOD};
    setrlimit(RLIMIT_NOFILE, &rl);
    int last = -1, fd;
    while ((fd = pidfd_open(getpid(), 0)) >= 0)
        last = fd;
    printf("pidfds of itself until %s, the last at the limit %d\n", strerrorname_np(errno),
           last == FLOOD - 1);
    struct clone_args a;
    memset(&a, 0, sizeof a);
    int pfd = -1;
    a.flags = CLONE_PIDFD;
    a.pidfd = (uintptr_t)&pfd;
    a.exit_signal = SIGCHLD;
    long r = syscall(SYS_clone3, &a, sizeof a);
    if (r == 0) _exit(0);
    const char *what = err(r);
    printf("%-52s %s, no child %d\n", "clone3 CLONE_PIDFD, table full", what,
           waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
    for (fd = 3; fd < FLOOD; fd++)
        close(fd);
    printf("closed: next fd 3 %d\n", next_fd() == 3);

    /* a pidfd for each of many children, each killed and waited for through it */
    int fds[KIDS];
    for (int i = 0; i < KIDS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;) pause();
        }
        fds[i] = pidfd_open(pid, 0);
    }
    int killed = 0, waited = 0, hup = 0;
    for (int i = 0; i < KIDS; i++)
        killed += send_signal(fds[i], SIGKILL, NULL, 0) == 0;
    for (int i = 0; i < KIDS; i++) {
        siginfo_t si;
        waited += waitid(P_PIDFD, fds[i], &si, WEXITED) == 0 && si.si_status == SIGKILL;
    }
    for (int i = 0; i < KIDS; i++) {
        struct pollfd p = {fds[i], POLLIN, 0};
        hup += poll(&p, 1, 0) == 1 && p.revents & POLLHUP;
        close(fds[i]);
    }
    printf("%d children: killed %d, waited %d, hung up %d\n", KIDS, killed == KIDS,
           waited == KIDS, hup == KIDS);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    test_bad_pointers();
    test_permissions();
    test_reaped();
    test_not_the_guests();
    test_floods();
    printf("-- exit 0\n");
    return 0;
}
