/* inotify, one section per argument, in the directory given first:
   tests/guest/fs/test_inotify.py runs each natively and in a guest and
   wants the same output.  Events are printed as they are read: wd, the
   mask's names, whether a cookie pairs a move, the name. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHOW(label, expr) do { \
    errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

static char base[256], buf[1 << 20];

static const char *at(const char *name) {
    static char paths[4][512];
    static int i;
    char *p = paths[i++ & 3];
    snprintf(p, 512, "%s/%s", base, name);
    return p;
}

static const struct { unsigned bit; const char *name; } NAMES[] = {
    {IN_ACCESS, "ACCESS"}, {IN_MODIFY, "MODIFY"}, {IN_ATTRIB, "ATTRIB"},
    {IN_CLOSE_WRITE, "CLOSE_WRITE"}, {IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"}, {IN_OPEN, "OPEN"},
    {IN_MOVED_FROM, "MOVED_FROM"}, {IN_MOVED_TO, "MOVED_TO"}, {IN_CREATE, "CREATE"},
    {IN_DELETE, "DELETE"}, {IN_DELETE_SELF, "DELETE_SELF"}, {IN_MOVE_SELF, "MOVE_SELF"},
    {IN_Q_OVERFLOW, "Q_OVERFLOW"}, {IN_IGNORED, "IGNORED"}, {IN_ISDIR, "ISDIR"},
};

/* Read and print every event queued (the fd is nonblocking). */
static void drain(int fd) {
    static unsigned last_cookie;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            printf("  wd %d", e->wd);
            for (unsigned i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
                if (e->mask & NAMES[i].bit)
                    printf(" %s", NAMES[i].name);
            if (e->cookie)
                printf(" cookie %s", e->cookie == last_cookie ? "(same)" : "(new)");
            if (e->cookie)
                last_cookie = e->cookie;
            if (e->len)
                printf(" '%s' len %u", e->name, e->len);
            printf("\n");
            p += sizeof *e + e->len;
        }
    }
    if (errno != EAGAIN)
        printf("  read: %s\n", strerrorname_np(errno));
}

static void section_events(void) {
    int in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    printf("cloexec %d nonblock %d\n", !!(fcntl(in, F_GETFD) & FD_CLOEXEC),
           !!(fcntl(in, F_GETFL) & O_NONBLOCK));
    int d = inotify_add_watch(in, base, IN_ALL_EVENTS & ~IN_ACCESS);
    printf("dir wd %d\n", d);
    printf("create, write twice, close\n");
    int fd = open(at("f"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    write(fd, "ab", 2);
    write(fd, "cd", 2);
    close(fd);
    drain(in);
    int w = inotify_add_watch(in, at("f"), IN_ALL_EVENTS);
    printf("file wd %d\n", w);
    printf("read it\n");
    fd = open(at("f"), O_RDONLY);
    read(fd, buf, 10);
    close(fd);
    drain(in);
    printf("chmod, utimes, truncate\n");
    chmod(at("f"), 0600);
    utimes(at("f"), NULL);
    truncate(at("f"), 1);
    drain(in);
    printf("open O_TRUNC\n");
    close(open(at("f"), O_WRONLY | O_TRUNC));
    drain(in);
    printf("rename, link, unlink both\n");
    rename(at("f"), at("g"));
    link(at("g"), at("h"));
    unlink(at("g"));
    unlink(at("h"));
    drain(in);
    printf("mkdir, rename into it, rmdir\n");
    mkdir(at("sub"), 0755);
    int s = inotify_add_watch(in, at("sub"), IN_ALL_EVENTS);
    close(open(at("x"), O_WRONLY | O_CREAT, 0644));
    rename(at("x"), at("sub/y"));
    unlink(at("sub/y"));
    rmdir(at("sub"));
    printf("sub wd %d\n", s);
    drain(in);
    printf("symlink, mknod fifo\n");
    symlink("nowhere", at("l"));
    mknod(at("p"), S_IFIFO | 0600, 0);
    unlink(at("l"));
    unlink(at("p"));
    drain(in);
    close(in);
}

static void section_api(void) {
    int in = inotify_init1(IN_NONBLOCK);
    close(open(at("a"), O_WRONLY | O_CREAT, 0644));
    SHOW("init1 bad flags", inotify_init1(1));
    SHOW("add bad fd", inotify_add_watch(99, base, IN_CREATE));
    SHOW("add not inotify", inotify_add_watch(1, base, IN_CREATE));
    SHOW("add no bits", inotify_add_watch(in, base, 0));
    SHOW("add ADD|CREATE", inotify_add_watch(in, base, IN_CREATE | IN_MASK_ADD | IN_MASK_CREATE));
    SHOW("add ONLYDIR on a file", inotify_add_watch(in, at("a"), IN_CREATE | IN_ONLYDIR));
    SHOW("add missing", inotify_add_watch(in, at("missing"), IN_CREATE));
    SHOW("add bad path", inotify_add_watch(in, (char *)8, IN_CREATE));
    SHOW("add dir", inotify_add_watch(in, base, IN_CREATE));
    SHOW("add dir again", inotify_add_watch(in, base, IN_DELETE));
    SHOW("add dir MASK_CREATE", inotify_add_watch(in, base, IN_DELETE | IN_MASK_CREATE));
    SHOW("add dir MASK_ADD", inotify_add_watch(in, base, IN_CREATE | IN_MASK_ADD));
    SHOW("add file", inotify_add_watch(in, at("a"), IN_ATTRIB | IN_DELETE_SELF | IN_ONESHOT));
    SHOW("rm unknown", inotify_rm_watch(in, 42));
    SHOW("rm not inotify", inotify_rm_watch(1, 1));
    SHOW("read empty", read(in, buf, sizeof buf));
    struct pollfd pfd = {.fd = in, .events = POLLIN};
    SHOW("poll empty", poll(&pfd, 1, 0));
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev);
    SHOW("epoll empty", epoll_wait(ep, &got, 1, 0));
    mkdir(at("d"), 0755);
    chmod(at("a"), 0600);       /* one shot: the file's watch ends with it */
    chmod(at("a"), 0644);
    SHOW("poll ready", poll(&pfd, 1, 0));
    printf("revents %#x\n", pfd.revents);
    SHOW("epoll ready", epoll_wait(ep, &got, 1, 0));
    int queued = -1;
    SHOW("FIONREAD", ioctl(in, FIONREAD, &queued));
    printf("queued %d\n", queued);
    SHOW("read into 16 bytes", read(in, buf, 16));
    SHOW("read into 0 bytes", read(in, buf, 0));
    drain(in);
    mkdir(at("e"), 0755);       /* one event, lost to a read into a bad buffer */
    char *volatile bad = (char *)8;
    SHOW("read bad buffer", read(in, bad, 4096));
    SHOW("read after", read(in, buf, sizeof buf));
    printf("rmdir, rm_watch of the dir\n");
    rmdir(at("d"));
    rmdir(at("e"));
    SHOW("rm dir watch", inotify_rm_watch(in, 1));
    SHOW("rm it again", inotify_rm_watch(in, 1));
    drain(in);
    printf("a watched file unlinked\n");
    SHOW("add file", inotify_add_watch(in, at("a"), IN_DELETE_SELF));
    unlink(at("a"));
    drain(in);
    close(ep);
    close(in);
}

static void on_alarm(int sig) { (void)sig; }

static void section_block(void) {
    int in = inotify_init(), p[2];
    inotify_add_watch(in, base, IN_CREATE);
    pipe(p);
    if (fork() == 0) {
        write(p[1], "r", 1);
        ssize_t n = read(in, buf, sizeof buf);      /* waits for the parent's create */
        struct inotify_event *e = (struct inotify_event *)buf;
        printf("child read %zd: %s\n", n, n > 0 ? e->name : "-");
        struct sigaction sa = {.sa_handler = on_alarm};
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval it = {.it_value = {0, 50000}};
        setitimer(ITIMER_REAL, &it, NULL);
        SHOW("child read, interrupted", read(in, buf, sizeof buf));
        _exit(0);
    }
    char ch;
    read(p[0], &ch, 1);
    close(open(at("made"), O_WRONLY | O_CREAT, 0644));
    int st;
    wait(&st);
    printf("child status %d\n", st);
    unlink(at("made"));
    close(in);
}

static void section_overflow(void) {
    int in = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(in, base, IN_CREATE | IN_DELETE);
    for (int i = 0; i < 8200; i++) {
        mkdir(at("o"), 0755);
        rmdir(at("o"));
    }
    long events = 0, overflows = 0, last_wd = 0;
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            events++;
            overflows += !!(e->mask & IN_Q_OVERFLOW);
            last_wd = e->wd;
            p += sizeof *e + e->len;
        }
    printf("events %ld overflows %ld last wd %ld\n", events, overflows, last_wd);
    close(in);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return 2;
    for (int i = 2; i < argc; i++) {
        snprintf(base, sizeof base, "%s/in-%s", argv[1], argv[i]);
        mkdir(base, 0755);
        printf("== %s\n", argv[i]);
        if (!strcmp(argv[i], "events")) section_events();
        else if (!strcmp(argv[i], "api")) section_api();
        else if (!strcmp(argv[i], "block")) section_block();
        else if (!strcmp(argv[i], "overflow")) section_overflow();
        else { printf("unknown section\n"); return 2; }
    }
    return 0;
}
