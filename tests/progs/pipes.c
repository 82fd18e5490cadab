/* Pipes, the fd table, poll/select/epoll and eventfd, one section per
   argument: tests/test_pipes.py runs each natively and in a guest and wants
   the same output.  One process only: a pipe is tested by writing to it and
   reading it back, a wait by its timeout or by something already ready. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* Print what a call returned, and errno's name when it failed. */
#define SHOW(label, expr) do { \
    errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

static char big[1 << 17];

static void nonblock(int fd, int on) {
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Write chunk-sized pieces until the pipe is full; the bytes it took. */
static long fill(int fd, size_t chunk) {
    long total = 0, n;
    while ((n = write(fd, big, chunk)) > 0)
        total += n;
    if (errno != EAGAIN)
        printf("fill: %s\n", strerrorname_np(errno));
    return total;
}

/* Fifteen full pages and one with room bytes left. */
static void fill_but(int fd, int room) {
    for (int i = 0; i < 15; i++)
        write(fd, big, 4096);
    write(fd, big, 4096 - room);
}

static void drain(int fd) {
    while (read(fd, big, sizeof big) > 0)
        ;
}

static void section_pipe(void) {
    int p[2];
    char buf[64];
    SHOW("pipe", pipe(p));
    printf("fds %d %d\n", p[0], p[1]);
    SHOW("write hello", write(p[1], "hello", 5));
    int avail = -1;
    SHOW("FIONREAD", ioctl(p[0], FIONREAD, &avail));
    printf("avail %d\n", avail);
    SHOW("read wants 64", read(p[0], buf, sizeof buf));
    SHOW("write on the read end", write(p[0], "x", 1));
    SHOW("read on the write end", read(p[1], buf, 1));
    SHOW("lseek", lseek(p[0], 0, SEEK_SET));
    SHOW("write 0 bytes", write(p[1], buf, 0));
    SHOW("F_GETFL read end", fcntl(p[0], F_GETFL));
    SHOW("F_GETFL write end", fcntl(p[1], F_GETFL));

    struct stat st, root;
    fstat(p[0], &st);
    stat("/", &root);
    printf("fifo %d perm %o nlink %ld size %ld blksize %ld ino-set %d dev-differs %d\n",
           S_ISFIFO(st.st_mode), st.st_mode & 07777, (long)st.st_nlink, (long)st.st_size,
           (long)st.st_blksize, st.st_ino != 0, st.st_dev != root.st_dev);
    struct stat st1;
    fstat(p[1], &st1);
    printf("same inode both ends %d\n", st.st_ino == st1.st_ino && st.st_dev == st1.st_dev);

    nonblock(p[0], 1);
    SHOW("read empty after F_SETFL O_NONBLOCK", read(p[0], buf, 1));
    nonblock(p[0], 0);
    SHOW("write abc", write(p[1], "abc", 3));
    SHOW("close write end", close(p[1]));
    SHOW("read the rest", read(p[0], buf, sizeof buf));
    SHOW("read at EOF", read(p[0], buf, sizeof buf));
    SHOW("close read end", close(p[0]));
    SHOW("close it again", close(p[0]));

    SHOW("pipe2 bad flags", pipe2(p, O_APPEND));
    SHOW("pipe bad pointer", syscall(SYS_pipe, (int *)8));
    SHOW("pipe2 O_NONBLOCK|O_CLOEXEC", pipe2(p, O_NONBLOCK | O_CLOEXEC));
    printf("fds %d %d (none leaked)\n", p[0], p[1]);
    SHOW("F_GETFD", fcntl(p[0], F_GETFD));
    SHOW("F_GETFL read end", fcntl(p[0], F_GETFL));
    SHOW("read empty nonblocking", read(p[0], buf, 1));

    /* Capacity is counted in pages, as Linux does. */
    printf("capacity 64-byte writes %ld\n", fill(p[1], 64));
    drain(p[0]);
    printf("capacity 4096-byte writes %ld\n", fill(p[1], 4096));
    drain(p[0]);
    printf("capacity 1000-byte writes %ld\n", fill(p[1], 1000));
    drain(p[0]);
    SHOW("write 70000 nonblocking", write(p[1], big, 70000));
    drain(p[0]);
    /* Leave 100 bytes of room in the last page: a small write does not split. */
    fill_but(p[1], 100);
    SHOW("write 100 into 100 free", write(p[1], big, 100));
    SHOW("write 1 more", write(p[1], big, 1));
    drain(p[0]);
    fill_but(p[1], 100);
    SHOW("write 200 into 100 free", write(p[1], big, 200));
    SHOW("write 5000 into 100 free", write(p[1], big, 5000));
    SHOW("FIONREAD full", ioctl(p[0], FIONREAD, &avail));
    printf("avail %d\n", avail);

    SHOW("F_GETPIPE_SZ", fcntl(p[1], F_GETPIPE_SZ));
    SHOW("F_SETPIPE_SZ smaller than its data", fcntl(p[1], F_SETPIPE_SZ, 4096));
    drain(p[0]);
    SHOW("F_SETPIPE_SZ 100000", fcntl(p[1], F_SETPIPE_SZ, 100000));
    printf("capacity now %ld\n", fill(p[1], 4096));
    drain(p[0]);
    SHOW("F_SETPIPE_SZ 0", fcntl(p[0], F_SETPIPE_SZ, 0));
    SHOW("F_GETPIPE_SZ", fcntl(p[0], F_GETPIPE_SZ));
    SHOW("F_GETPIPE_SZ of a regular file", fcntl(open("/etc/data", O_RDONLY), F_GETPIPE_SZ));

    /* readv returns what the pipe holds, even if it fills only the first buffer */
    char first[3], second[8];
    struct iovec iv[2] = {{first, sizeof first}, {second, sizeof second}};
    write(p[1], "abc", 3);
    SHOW("readv of 3 bytes into 3+8", readv(p[0], iv, 2));
    write(p[1], "abcdefg", 7);
    SHOW("readv of 7 bytes into 3+8", readv(p[0], iv, 2));
    printf("scattered %.3s|%.4s\n", first, second);

    signal(SIGPIPE, SIG_IGN);          /* EPIPE is what this prints, not the signal */
    SHOW("write 4 before the reader goes", write(p[1], "data", 4));
    SHOW("close read end", close(p[0]));
    SHOW("write with no reader", write(p[1], "x", 1));
}

static void section_fds(void) {
    char buf[16];
    int f = open("/etc/data", O_RDONLY);
    printf("open %d\n", f);
    SHOW("dup", dup(f));
    SHOW("read 4 via fd 3", read(3, buf, 4));
    SHOW("read 4 via fd 4", read(4, buf, 4));
    printf("shared offset gives \"%.4s\"\n", buf);
    SHOW("dup2 to itself", dup2(3, 3));
    SHOW("dup2 from a closed fd", dup2(99, 5));
    SHOW("dup2 past the limit", dup2(3, 1 << 20));
    SHOW("dup2 to 10", dup2(3, 10));
    SHOW("F_GETFD 10", fcntl(10, F_GETFD));
    SHOW("dup3 to itself", dup3(3, 3, 0));
    SHOW("dup3 bad flags", dup3(3, 11, O_NONBLOCK));
    SHOW("dup3 O_CLOEXEC", dup3(3, 11, O_CLOEXEC));
    SHOW("F_GETFD 11", fcntl(11, F_GETFD));
    SHOW("F_SETFD 0", fcntl(11, F_SETFD, 0));
    SHOW("F_GETFD 11", fcntl(11, F_GETFD));
    SHOW("F_DUPFD 20", fcntl(3, F_DUPFD, 20));
    SHOW("F_DUPFD 20 again", fcntl(3, F_DUPFD, 20));
    SHOW("F_DUPFD_CLOEXEC 5", fcntl(3, F_DUPFD_CLOEXEC, 5));
    SHOW("F_GETFD 5", fcntl(5, F_GETFD));
    SHOW("F_DUPFD -1", fcntl(3, F_DUPFD, -1));
    SHOW("F_DUPFD past the limit", fcntl(3, F_DUPFD, 1 << 20));
    SHOW("F_GETFL", fcntl(3, F_GETFL) & ~0100000);
    SHOW("F_SETFL O_APPEND|O_NONBLOCK", fcntl(3, F_SETFL, O_APPEND | O_NONBLOCK));
    SHOW("F_GETFL via the dup", fcntl(4, F_GETFL) & ~0100000);
    SHOW("F_SETFL 0", fcntl(3, F_SETFL, 0));
    SHOW("F_GETFL", fcntl(3, F_GETFL) & ~0100000);
    SHOW("unknown fcntl", fcntl(3, 12345));
    SHOW("fcntl on a closed fd", fcntl(99, F_GETFD));

    /* A pipe's write end stays open while any dup of it does. */
    int p[2];
    pipe2(p, O_NONBLOCK);
    printf("pipe %d %d\n", p[0], p[1]);
    int w2 = dup(p[1]);
    SHOW("close one write end", close(p[1]));
    SHOW("read: still a writer", read(p[0], buf, 1));
    SHOW("dup2 over the last write end", dup2(f, w2));
    SHOW("read: no writer now", read(p[0], buf, 1));
    close(p[0]);

    /* close_range */
    for (int fd = 12; fd <= 18; fd++)
        dup2(3, fd);
    SHOW("close_range 5..4", syscall(SYS_close_range, 5, 4, 0));
    SHOW("close_range bad flags", syscall(SYS_close_range, 5, 6, 1));
    SHOW("close_range 12..14", syscall(SYS_close_range, 12, 14, 0));
    SHOW("close_range 16..~0 CLOEXEC", syscall(SYS_close_range, 16, ~0U, 4));
    SHOW("close_range 15..15 UNSHARE", syscall(SYS_close_range, 15, 15, 2));
    for (int fd = 10; fd <= 21; fd++) {
        char label[32];
        snprintf(label, sizeof label, "F_GETFD %d", fd);
        SHOW(label, fcntl(fd, F_GETFD));
    }
    SHOW("close_range 3..~0", syscall(SYS_close_range, 3, ~0U, 0));
    SHOW("dup gets the lowest", dup(0));

    /* The fd limit. */
    struct rlimit rl = {16, 16};
    SHOW("setrlimit NOFILE 16", setrlimit(RLIMIT_NOFILE, &rl));
    int n = 0;
    while (dup(0) >= 0)
        n++;
    printf("dups until %s: %d\n", strerrorname_np(errno), n);
    SHOW("F_DUPFD 0 when full", fcntl(0, F_DUPFD, 0));
    SHOW("pipe when full", pipe(p));
    SHOW("close 15", close(15));
    SHOW("pipe with one free", pipe(p));
    SHOW("dup2 to 15", dup2(0, 15));
    SHOW("dup2 to 16", dup2(0, 16));
}

static void show_poll(const char *label, struct pollfd *fds, int n, int timeout) {
    errno = 0;
    int r = poll(fds, n, timeout);
    printf("%s = %d%s%s:", label, r, r < 0 ? " " : "", r < 0 ? strerrorname_np(errno) : "");
    for (int i = 0; i < n; i++)
        printf(" %#x", fds[i].revents);
    printf("\n");
}

static void section_poll(void) {
    int p[2];
    pipe2(p, O_NONBLOCK);
    struct pollfd fds[4] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {-1, POLLIN, 0}, {99, POLLIN, 0}};
    show_poll("poll empty, 0 ms", fds, 1, 0);
    show_poll("poll empty, 30 ms", fds, 1, 30);
    show_poll("poll four", fds, 4, -1);
    write(p[1], "x", 1);
    show_poll("poll with data", fds, 2, -1);
    fill(p[1], 4096);
    show_poll("poll full", fds, 2, 0);
    struct pollfd out = {p[1], POLLIN, 0};
    show_poll("POLLIN on the write end", &out, 1, 0);
    SHOW("poll too many fds", syscall(SYS_poll, fds, 1 << 21, 0));
    SHOW("poll bad pointer", syscall(SYS_poll, (struct pollfd *)8, 1, 0));

    struct timespec ts = {0, 20 * 1000 * 1000};
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    drain(p[0]);
    SHOW("ppoll empty, 20 ms, mask", ppoll(fds, 1, &ts, &mask));
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("SIGUSR1 blocked after ppoll %d\n", sigismember(&now, SIGUSR1));
    SHOW("ppoll bad sigsetsize", syscall(SYS_ppoll, fds, 1, &ts, &mask, 4));
    struct timespec bad = {0, 1000000000};
    SHOW("ppoll bad timespec", ppoll(fds, 1, &bad, NULL));
    SHOW("ppoll ready", ppoll(fds, 2, NULL, &mask));

    /* select */
    fd_set r, w, e;
    FD_ZERO(&r); FD_ZERO(&w); FD_ZERO(&e);
    FD_SET(p[0], &r); FD_SET(p[1], &w); FD_SET(p[0], &e);
    struct timeval tv = {0, 0};
    SHOW("select: writable only", select(p[1] + 1, &r, &w, &e, &tv));
    printf("sets r %d w %d e %d\n", FD_ISSET(p[0], &r), FD_ISSET(p[1], &w), FD_ISSET(p[0], &e));
    FD_ZERO(&r); FD_SET(p[0], &r);
    tv.tv_usec = 25000;
    SHOW("select empty, 25 ms", select(p[0] + 1, &r, NULL, NULL, &tv));
    printf("left %ld %ld, r %d\n", (long)tv.tv_sec, (long)tv.tv_usec, FD_ISSET(p[0], &r));
    write(p[1], "y", 1);
    FD_SET(p[0], &r); FD_ZERO(&w); FD_SET(p[1], &w);
    SHOW("select both", select(p[1] + 1, &r, &w, NULL, NULL));
    printf("sets r %d w %d\n", FD_ISSET(p[0], &r), FD_ISSET(p[1], &w));
    FD_ZERO(&r); FD_SET(50, &r);
    SHOW("select closed fd", select(51, &r, NULL, NULL, NULL));
    SHOW("select negative n", select(-1, NULL, NULL, NULL, NULL));
    tv.tv_sec = -1;
    SHOW("select negative timeout", select(1, NULL, NULL, NULL, &tv));
    FD_ZERO(&r); FD_SET(p[0], &r);
    struct timespec zero = {0, 0};
    SHOW("pselect ready, mask", pselect(p[0] + 1, &r, NULL, NULL, &zero, &mask));
    printf("sets r %d\n", FD_ISSET(p[0], &r));
    drain(p[0]);
    FD_SET(p[0], &r);
    ts.tv_nsec = 10 * 1000 * 1000;
    SHOW("pselect empty, 10 ms", pselect(p[0] + 1, &r, NULL, NULL, &ts, NULL));
    printf("sets r %d\n", FD_ISSET(p[0], &r));

    /* Hang-up and error. */
    write(p[1], "z", 1);
    close(p[1]);
    show_poll("poll after the writer left", fds, 1, -1);
    drain(p[0]);
    show_poll("poll at EOF", fds, 1, -1);
    pipe(p);
    close(p[0]);
    struct pollfd wend = {p[1], POLLOUT, 0};
    show_poll("poll a write end with no reader", &wend, 1, -1);
    struct pollfd file = {open("/etc/data", O_RDONLY), POLLIN | POLLOUT, 0};
    show_poll("poll a regular file", &file, 1, -1);
}

static void show_epoll(const char *label, int ep, int max, int timeout) {
    struct epoll_event ev[8];
    errno = 0;
    int r = epoll_wait(ep, ev, max, timeout);
    printf("%s = %d%s%s:", label, r, r < 0 ? " " : "", r < 0 ? strerrorname_np(errno) : "");
    for (int i = 0; i < r; i++)
        printf(" %#x/%lu", ev[i].events, (unsigned long)ev[i].data.u64);
    printf("\n");
}

static int ctl(int ep, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(ep, op, fd, &ev);
}

static void section_epoll(void) {
    SHOW("epoll_create 0", epoll_create(0));
    SHOW("epoll_create1 bad flags", epoll_create1(1));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("ep %d\n", ep);
    SHOW("F_GETFD", fcntl(ep, F_GETFD));
    SHOW("F_GETFL", fcntl(ep, F_GETFL));
    int p[2], q[2];
    pipe2(p, O_NONBLOCK);
    pipe2(q, O_NONBLOCK);
    SHOW("add p read end", ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 7));
    SHOW("add it again", ctl(ep, EPOLL_CTL_ADD, p[0], EPOLLIN, 7));
    SHOW("add the epoll to itself", ctl(ep, EPOLL_CTL_ADD, ep, EPOLLIN, 0));
    SHOW("add a regular file", ctl(ep, EPOLL_CTL_ADD, open("/etc/data", O_RDONLY), EPOLLIN, 0));
    SHOW("mod a stranger", ctl(ep, EPOLL_CTL_MOD, q[0], EPOLLIN, 0));
    SHOW("del a stranger", ctl(ep, EPOLL_CTL_DEL, q[0], 0, 0));
    SHOW("bad op", ctl(ep, 9, p[0], EPOLLIN, 0));
    SHOW("ctl on a pipe", ctl(p[0], EPOLL_CTL_ADD, q[0], EPOLLIN, 0));
    SHOW("ctl closed fd", ctl(ep, EPOLL_CTL_ADD, 99, EPOLLIN, 0));
    SHOW("exclusive mod", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLEXCLUSIVE, 0));
    show_epoll("wait maxevents 0", ep, 0, 0);
    show_epoll("wait on a pipe", p[0], 1, 0);
    show_epoll("wait empty, 0 ms", ep, 8, 0);
    show_epoll("wait empty, 30 ms", ep, 8, 30);

    write(p[1], "a", 1);
    show_epoll("level: data", ep, 8, -1);
    show_epoll("level: still data", ep, 8, 0);
    SHOW("mod to edge", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLET, 8));
    show_epoll("edge: ready at mod", ep, 8, 0);
    show_epoll("edge: no new edge", ep, 8, 0);
    write(p[1], "b", 1);
    show_epoll("edge: a write is an edge", ep, 8, 0);
    show_epoll("edge: spent", ep, 8, 0);
    SHOW("mod to one-shot", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLONESHOT, 9));
    show_epoll("one-shot", ep, 8, 0);
    write(p[1], "c", 1);
    show_epoll("one-shot: disarmed", ep, 8, 0);
    SHOW("rearm", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN | EPOLLONESHOT, 10));
    show_epoll("one-shot again", ep, 8, 0);
    SHOW("mod back to level", ctl(ep, EPOLL_CTL_MOD, p[0], EPOLLIN, 7));

    /* Order: the ready list, level-triggered ones go to its back when reported. */
    SHOW("add q write end", ctl(ep, EPOLL_CTL_ADD, q[1], EPOLLOUT, 11));
    SHOW("add q read end", ctl(ep, EPOLL_CTL_ADD, q[0], EPOLLIN, 12));
    write(q[1], "d", 1);
    show_epoll("one at a time", ep, 1, 0);
    show_epoll("one at a time", ep, 1, 0);
    show_epoll("one at a time", ep, 1, 0);
    show_epoll("one at a time", ep, 1, 0);
    show_epoll("all", ep, 8, 0);

    /* Hang-up, error, and the end of a watch. */
    close(q[1]);
    show_epoll("q's writer gone", ep, 8, 0);
    drain(q[0]);
    show_epoll("q drained", ep, 8, 0);
    int p0dup = dup(p[0]);
    close(p[0]);
    show_epoll("p's read end still open by a dup", ep, 8, 0);
    SHOW("del by the closed fd", ctl(ep, EPOLL_CTL_DEL, p[0], 0, 0));
    close(p0dup);
    show_epoll("p's read end closed everywhere", ep, 8, 0);
    SHOW("del q read end", ctl(ep, EPOLL_CTL_DEL, q[0], 0, 0));
    show_epoll("nothing left", ep, 8, 0);

    /* Nested epolls, eventfd inside. */
    int inner = epoll_create1(0), outer = epoll_create1(0);
    int efd = eventfd(0, EFD_NONBLOCK);
    SHOW("inner watches eventfd", ctl(inner, EPOLL_CTL_ADD, efd, EPOLLIN, 21));
    SHOW("outer watches inner", ctl(outer, EPOLL_CTL_ADD, inner, EPOLLIN, 22));
    SHOW("inner watches outer: loop", ctl(inner, EPOLL_CTL_ADD, outer, EPOLLIN, 23));
    show_epoll("outer, nothing", outer, 8, 0);
    uint64_t one = 1;
    write(efd, &one, 8);
    show_epoll("outer after eventfd write", outer, 8, -1);
    show_epoll("inner", inner, 8, 0);
    struct pollfd pf = {inner, POLLIN, 0};
    show_poll("poll the inner epoll", &pf, 1, 0);
}

static void section_eventfd(void) {
    SHOW("eventfd2 bad flags", eventfd(0, 0x10));
    int e = eventfd(3, EFD_NONBLOCK | EFD_CLOEXEC);
    printf("efd %d\n", e);
    SHOW("F_GETFD", fcntl(e, F_GETFD));
    SHOW("F_GETFL", fcntl(e, F_GETFL));
    struct stat st;
    fstat(e, &st);
    printf("mode %o nlink %ld size %ld\n", st.st_mode, (long)st.st_nlink, (long)st.st_size);
    uint64_t v = 0;
    SHOW("read 4 bytes", read(e, &v, 4));
    SHOW("read", read(e, &v, 8));
    printf("value %lu\n", (unsigned long)v);
    SHOW("read empty", read(e, &v, 8));
    v = 5;
    SHOW("write 5", write(e, &v, 8));
    SHOW("write 4 bytes", write(e, &v, 4));
    v = ~0ULL;
    SHOW("write ~0", write(e, &v, 8));
    v = ~0ULL - 6;
    SHOW("write to the brim", write(e, &v, 8));
    v = 1;
    SHOW("write past it", write(e, &v, 8));
    struct pollfd pf = {e, POLLIN | POLLOUT, 0};
    show_poll("poll full counter", &pf, 1, 0);
    SHOW("read all", read(e, &v, 8));
    printf("value %lu\n", (unsigned long)v);
    show_poll("poll zero counter", &pf, 1, 0);

    int s = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    SHOW("semaphore read", read(s, &v, 8));
    printf("value %lu\n", (unsigned long)v);
    SHOW("semaphore read", read(s, &v, 8));
    SHOW("semaphore read", read(s, &v, 8));
    int b = eventfd(1, 0);
    SHOW("blocking read of a set counter", read(b, &v, 8));
    printf("value %lu\n", (unsigned long)v);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 5};
    int ep = epoll_create1(0);
    epoll_ctl(ep, EPOLL_CTL_ADD, e, &ev);
    v = 0;
    SHOW("write 0", write(e, &v, 8));
    show_epoll("a write of 0 is no event", ep, 8, 0);
    v = 2;
    write(e, &v, 8);
    show_epoll("a write of 2 is", ep, 8, 0);
    show_epoll("once", ep, 8, 0);
}

/* Run child(arg) in a child process after a short sleep, so the parent is
   blocked by then; returns its pid. */
static pid_t later(void (*child)(int), int arg) {
    pid_t pid = fork();
    if (pid == 0) {
        usleep(30000);
        child(arg);
        _exit(0);
    }
    return pid;
}

static void reap(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    printf("child exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static int shared[2];

static void child_write(int fd) { write(fd, "ping", 4); }
static void child_close(int fd) { close(fd); }
static void child_eventfd(int fd) { uint64_t v = 3; write(fd, &v, 8); }
static void child_read_all(int fd) {
    long total = 0, n;
    close(shared[1]);
    while ((n = read(fd, big, sizeof big)) > 0)
        total += n;
    printf("child read %ld\n", total);
}
static void child_records(int letter) {
    char rec[4096];
    memset(rec, letter, sizeof rec);
    for (int i = 0; i < 64; i++)
        write(shared[1], rec, sizeof rec);
}

/* Blocking: each wait below is ended by a child, never by a timeout. */
static void section_fork(void) {
    char buf[8];
    int p[2];
    pipe(p);
    pid_t c = later(child_write, p[1]);
    SHOW("read blocks until the child writes", read(p[0], buf, sizeof buf));
    reap(c);
    c = later(child_close, p[1]);
    close(p[1]);
    SHOW("read blocks until the last writer closes", read(p[0], buf, sizeof buf));
    reap(c);
    close(p[0]);

    pipe(p);
    struct pollfd pf = {p[0], POLLIN, 0};
    c = later(child_write, p[1]);
    SHOW("poll -1 until the child writes", poll(&pf, 1, -1));
    reap(c);
    read(p[0], buf, sizeof buf);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1}, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    c = later(child_write, p[1]);
    SHOW("epoll_wait -1 until the child writes", epoll_wait(ep, &got, 1, -1));
    reap(c);
    read(p[0], buf, sizeof buf);
    fd_set r;
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    c = later(child_write, p[1]);
    SHOW("select until the child writes", select(p[0] + 1, &r, NULL, NULL, NULL));
    reap(c);
    read(p[0], buf, sizeof buf);
    int e = eventfd(0, 0);
    uint64_t v;
    c = later(child_eventfd, e);
    SHOW("eventfd read blocks until the child adds", read(e, &v, 8));
    printf("value %lu\n", (unsigned long)v);
    reap(c);

    /* A write larger than the pipe blocks until the reader has taken it all. */
    shared[1] = p[1];
    c = later(child_read_all, p[0]);
    close(p[0]);
    SHOW("write 200000 bytes", write(p[1], big, 100000) + write(p[1], big, 100000));
    close(p[1]);
    reap(c);

    /* Writes of PIPE_BUF bytes from two writers never interleave. */
    pipe(shared);
    pid_t a = later(child_records, 'a'), b = later(child_records, 'b');
    close(shared[1]);
    int records = 0, torn = 0;
    for (;;) {
        char rec[4096];
        size_t have = 0;
        ssize_t n = 1;
        while (have < sizeof rec && (n = read(shared[0], rec + have, sizeof rec - have)) > 0)
            have += n;
        if (have == 0)
            break;
        records++;
        for (size_t i = 1; i < have; i++)
            torn += rec[i] != rec[0];
    }
    printf("records %d torn %d\n", records, torn);
    reap(a);
    reap(b);

    /* A reader killed while it waits takes nothing with it. */
    pipe(p);
    int status;
    ep = epoll_create1(0);
    ev.events = EPOLLIN | EPOLLET;
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    pid_t readers[2];
    for (int i = 0; i < 2; i++) {
        readers[i] = fork();
        if (readers[i] == 0) {
            if (i == 0)
                read(p[0], buf, 4);
            else
                epoll_wait(ep, &got, 1, -1);
            _exit(1);
        }
    }
    usleep(30000);
    for (int i = 0; i < 2; i++) {
        kill(readers[i], SIGKILL);
        waitpid(readers[i], &status, 0);
        printf("reader killed by %d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    }
    write(p[1], "abcd", 4);
    SHOW("the edge is still there", epoll_wait(ep, &got, 1, 0));
    SHOW("so is the data", read(p[0], buf, sizeof buf));
    close(p[0]);
    close(p[1]);

    /* Ping-pong. */
    int up[2], down[2];
    pipe(up);
    pipe(down);
    pid_t echo = fork();
    if (echo == 0) {
        close(down[1]);
        close(up[0]);
        while (read(down[0], buf, 1) == 1)
            write(up[1], buf, 1);
        _exit(0);
    }
    close(down[0]);
    close(up[1]);
    int rounds = 0;
    for (int i = 0; i < 200; i++)
        if (write(down[1], "x", 1) == 1 && read(up[0], buf, 1) == 1)
            rounds++;
    close(down[1]);
    printf("round trips %d\n", rounds);
    SHOW("read after the echo left", read(up[0], buf, 1));
    reap(echo);
}

/* A FIFO at path: opens that wait for the other end, or do not. */
static void fifo_at(const char *path) {
    char buf[64];
    unlink(path);
    SHOW("mkfifo", mkfifo(path, 0600));
    SHOW("open write nonblock, no reader", open(path, O_WRONLY | O_NONBLOCK));
    int r = open(path, O_RDONLY | O_NONBLOCK);
    printf("open read nonblock, no writer: %s\n", r >= 0 ? "ok" : strerrorname_np(errno));
    SHOW("read, no writer yet", read(r, buf, sizeof buf));
    int w = open(path, O_WRONLY | O_NONBLOCK);
    printf("open write nonblock, a reader: %s\n", w >= 0 ? "ok" : strerrorname_np(errno));
    SHOW("write", write(w, "through", 7));
    SHOW("read", read(r, buf, sizeof buf));
    struct stat st;
    fstat(r, &st);
    printf("fstat fifo %d size %ld\n", S_ISFIFO(st.st_mode), (long)st.st_size);
    close(w);
    close(r);
    pid_t pid = fork();
    if (pid == 0) {                /* blocks until the parent opens to read */
        int fd = open(path, O_WRONLY);
        write(fd, "from the child", 14);
        _exit(0);
    }
    usleep(100000);
    r = open(path, O_RDONLY);      /* the child is waiting: no wait here */
    ssize_t n = read(r, buf, sizeof buf);
    printf("blocking opens met: %.*s\n", (int)(n > 0 ? n : 0), buf);
    SHOW("read after the writer left", read(r, buf, sizeof buf));
    close(r);
    reap(pid);
    int rw = open(path, O_RDWR);   /* never waits */
    SHOW("O_RDWR write", write(rw, "x", 1));
    SHOW("O_RDWR read", read(rw, buf, 1));
    close(rw);
    SHOW("unlink", unlink(path));
}

static void section_fifo(void) {
    fifo_at("/tmp/fifo");          /* tmpfs in a guest */
    fifo_at("/fifo");              /* its ext2 root */
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        printf("== %s\n", argv[i]);
        if (!strcmp(argv[i], "pipe")) section_pipe();
        else if (!strcmp(argv[i], "fds")) section_fds();
        else if (!strcmp(argv[i], "poll")) section_poll();
        else if (!strcmp(argv[i], "epoll")) section_epoll();
        else if (!strcmp(argv[i], "eventfd")) section_eventfd();
        else if (!strcmp(argv[i], "fork")) section_fork();
        else if (!strcmp(argv[i], "fifo")) section_fifo();
        else { printf("unknown section\n"); return 2; }
    }
    return 0;
}
