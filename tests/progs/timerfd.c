/* timerfd: what Linux answers, printed so that a native run and a guest
   run compare equal (times as bounds, never as values). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static const char *err(long r) { return r >= 0 ? "ok" : strerrorname_np(errno); }

static int readable(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("bad clock: %s\n", err(timerfd_create(42, 0)));
    printf("cputime clock: %s\n", err(timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0)));
    printf("bad flags: %s\n", err(timerfd_create(CLOCK_MONOTONIC, 1)));
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    printf("create: %s, cloexec %d, nonblock %d\n", err(fd), !!(fcntl(fd, F_GETFD) & FD_CLOEXEC),
           !!(fcntl(fd, F_GETFL) & O_NONBLOCK));
    char link[64] = "", path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(path, link, sizeof link - 1);
    printf("link: %s\n", len > 0 ? link : err(len));

    struct itimerspec cur, old;
    memset(&cur, 0xff, sizeof cur);
    timerfd_gettime(fd, &cur);
    printf("disarmed: %lld.%09ld / %lld.%09ld\n", (long long)cur.it_value.tv_sec,
           cur.it_value.tv_nsec, (long long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
    uint64_t ticks;
    printf("read disarmed: %s\n", err(read(fd, &ticks, 8)));
    printf("short read: %s\n", err(read(fd, &ticks, 4)));

    struct itimerspec ten = {{0, 0}, {10, 0}};
    printf("arm 10 s: %s\n", err(timerfd_settime(fd, 0, &ten, &old)));
    timerfd_gettime(fd, &cur);
    printf("left in (9, 10]: %d, interval 0: %d\n",
           cur.it_value.tv_sec == 9 || (cur.it_value.tv_sec == 10 && !cur.it_value.tv_nsec),
           !cur.it_interval.tv_sec && !cur.it_interval.tv_nsec);
    struct itimerspec one_ms = {{0, 0}, {0, 1000000}};
    const char *r = err(timerfd_settime(fd, 0, &one_ms, &old));
    printf("re-arm 1 ms: %s, old left > 9 s: %d\n", r, old.it_value.tv_sec >= 9);
    fcntl(fd, F_SETFL, 0);
    ssize_t n = read(fd, &ticks, 8);
    printf("blocking read: %zd bytes, ticks %llu\n", n, (unsigned long long)ticks);
    timerfd_gettime(fd, &cur);
    printf("after a one-shot: %lld.%09ld\n", (long long)cur.it_value.tv_sec,
           cur.it_value.tv_nsec);

    struct itimerspec every_ms = {{0, 1000000}, {0, 1000000}};
    timerfd_settime(fd, 0, &every_ms, NULL);
    struct timespec nap = {0, 30000000};
    nanosleep(&nap, NULL);
    read(fd, &ticks, 8);
    printf("periodic, 30 ms later: ticks >= 20: %d\n", ticks >= 20);
    struct itimerspec off = {{0, 0}, {0, 0}};
    timerfd_settime(fd, 0, &off, NULL);
    printf("disarmed: readable %d\n", readable(fd));

    int rt = timerfd_create(CLOCK_REALTIME, 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec at = {{0, 0}, {now.tv_sec - 1, now.tv_nsec}};     /* in the past */
    printf("absolute, past: %s\n", err(timerfd_settime(rt, TFD_TIMER_ABSTIME, &at, NULL)));
    n = read(rt, &ticks, 8);
    printf("ticks %zd:%llu\n", n, (unsigned long long)ticks);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 9};
    epoll_ctl(ep, EPOLL_CTL_ADD, rt, &ev);
    clock_gettime(CLOCK_REALTIME, &now);
    at.it_value.tv_sec = now.tv_sec;
    at.it_value.tv_nsec = now.tv_nsec + 2000000;
    if (at.it_value.tv_nsec >= 1000000000) {
        at.it_value.tv_sec++;
        at.it_value.tv_nsec -= 1000000000;
    }
    timerfd_settime(rt, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &at, NULL);
    int ready = epoll_wait(ep, &ev, 1, 10000);
    printf("epoll: %d data %u\n", ready, ev.data.u32);

    struct itimerspec bad = {{0, 0}, {0, 1000000000}};
    printf("bad nsec: %s\n", err(timerfd_settime(fd, 0, &bad, NULL)));
    struct itimerspec neg = {{0, 0}, {-1, 0}};
    printf("negative: %s\n", err(timerfd_settime(fd, 0, &neg, NULL)));
    printf("bad settime flags: %s\n", err(timerfd_settime(fd, 4, &ten, NULL)));
    printf("bad pointer: %s\n", err(timerfd_settime(fd, 0, (void *)8, NULL)));
    int p[2];
    pipe(p);
    printf("on a pipe: %s\n", err(timerfd_settime(p[0], 0, &ten, NULL)));
    printf("bad fd: %s\n", err(timerfd_gettime(999, &cur)));
    printf("gettime bad pointer: %s\n", err(timerfd_gettime(fd, (void *)8)));
    printf("write: %s\n", err(write(fd, &ticks, 8)));
    return 0;
}
