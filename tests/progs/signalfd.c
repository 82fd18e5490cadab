/* signalfd: the reader's pending signals as signalfd_siginfo records,
   the same natively and in a guest (pids printed relative to the caller). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) { return r >= 0 ? "ok" : strerrorname_np(errno); }

static void show(const struct signalfd_siginfo *s, pid_t me, pid_t child) {
    printf("  signo %u code %d pid %s uid %u status %d int %d ptr %llu\n", s->ssi_signo,
           s->ssi_code, s->ssi_pid == (unsigned)me ? "me" : s->ssi_pid == (unsigned)child ?
           "child" : "other", s->ssi_uid, s->ssi_status, s->ssi_int,
           (unsigned long long)s->ssi_ptr);
}

static int readable(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t me = getpid();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sigaddset(&set, SIGKILL);                     /* dropped silently */
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    printf("signalfd: %s, cloexec %d\n", err(fd), !!(fcntl(fd, F_GETFD) & FD_CLOEXEC));
    char link[64] = "";
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(path, link, sizeof link - 1);
    printf("link: %s\n", len > 0 ? link : err(len));

    struct signalfd_siginfo si[4];
    printf("empty read: %s\n", err(read(fd, si, sizeof si)));
    printf("short read: %s\n", err(read(fd, si, 100)));
    printf("readable before: %d\n", readable(fd));
    kill(me, SIGUSR1);
    union sigval v = {.sival_int = 42};
    sigqueue(me, SIGUSR2, v);
    printf("readable after: %d\n", readable(fd));
    ssize_t n = read(fd, si, sizeof si);
    printf("read: %zd bytes\n", n);
    for (int i = 0; i < n / (ssize_t)sizeof si[0]; i++)
        show(&si[i], me, 0);

    pid_t child = fork();
    if (child == 0)
        _exit(3);
    fcntl(fd, F_SETFL, 0);                           /* blocking now */
    n = read(fd, si, sizeof si[0]);
    printf("SIGCHLD read: %zd bytes\n", n);
    show(&si[0], me, child);
    waitpid(child, NULL, 0);

    child = fork();                                  /* a blocked read woken by a sender */
    if (child == 0) {
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    n = read(fd, si, sizeof si[0]);
    printf("woken read: %zd bytes\n", n);
    show(&si[0], me, child);
    waitpid(child, NULL, 0);
    n = read(fd, si, sizeof si);                     /* its SIGCHLD */
    printf("then: %zd bytes, signo %u\n", n, si[0].ssi_signo);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    printf("epoll before: %d\n", epoll_wait(ep, &ev, 1, 0));
    raise(SIGUSR2);
    printf("epoll after: %d data %u\n", epoll_wait(ep, &ev, 1, 0), ev.data.u32);
    read(fd, si, sizeof si);

    sigset_t only2;
    sigemptyset(&only2);
    sigaddset(&only2, SIGUSR2);
    printf("new mask: %s\n", signalfd(fd, &only2, 0) == fd ? "same fd" : err(-1));
    raise(SIGUSR1);
    printf("USR1 pending, readable: %d\n", readable(fd));
    struct timespec zero = {0, 0};
    printf("sigtimedwait takes: %d\n", sigtimedwait(&set, NULL, &zero));

    int p[2];
    pipe(p);
    printf("on a pipe: %s\n", err(signalfd(p[0], &set, 0)));
    printf("bad fd: %s\n", err(signalfd(999, &set, 0)));
    printf("sizemask 4: %s\n", err(syscall(SYS_signalfd4, -1, &set, 4, 0)));
    printf("bad flags: %s\n", err(syscall(SYS_signalfd4, -1, &set, 8, 1)));
    printf("bad mask: %s\n", err(syscall(SYS_signalfd4, -1, (void *)8, 8, 0)));
    printf("write: %s\n", err(write(fd, si, sizeof si[0])));
    return 0;
}
