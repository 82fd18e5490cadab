/* A file's owner and its signals (F_SETOWN, F_SETSIG, O_ASYNC) and dnotify
   (F_NOTIFY), one section per argument, in the directory given first:
   tests/guest/fs/test_sigio.py runs each natively and in a guest and wants
   the same output.  Signals are blocked and taken with a zero-timeout
   sigtimedwait after each step, so each step shows what it sent; a signal
   taken again with the same siginfo is not printed again (Linux queues an
   rt signal per event, skas keeps one pending). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHOW(label, expr) do { \
    errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

static char base[256];

static const char *at(const char *name) {
    static char paths[4][512];
    static int i;
    char *p = paths[i++ & 3];
    snprintf(p, 512, "%s/%s", base, name);
    return p;
}

static void block(int sig) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    sigprocmask(SIG_BLOCK, &s, NULL);
}

/* Take every pending sig and print what each says; fd is the fd si_fd should name. */
static void taken(const char *step, int sig, int fd) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    struct timespec zero = {0, 0};
    siginfo_t si;
    char line[160], last[160] = "";
    int n = 0;
    while (sigtimedwait(&s, &si, &zero) == sig) {
        n++;
        int len = snprintf(line, sizeof line, "%s: %s code %d", step,
                           sig == SIGIO ? "SIGIO" : sig == SIGUSR1 ? "SIGUSR1" : "rt", si.si_code);
        if (si.si_code != SI_KERNEL)
            snprintf(line + len, sizeof line - len, " band %#lx fd %s", si.si_band,
                     si.si_fd == fd ? "same" : "other");
        if (strcmp(line, last))
            printf("%s\n", line);
        strcpy(last, line);
    }
    if (!n)
        printf("%s: none\n", step);
}

static void section_owner(void) {
    int p[2];
    pipe(p);
    struct f_owner_ex ex = {-1, -1};
    SHOW("getown fresh", fcntl(p[0], F_GETOWN));
    SHOW("getown_ex fresh", fcntl(p[0], F_GETOWN_EX, &ex));
    printf("  type %d pid %d\n", ex.type, ex.pid);
    SHOW("getsig fresh", fcntl(p[0], F_GETSIG));
    SHOW("setown self", fcntl(p[0], F_SETOWN, getpid()));
    printf("getown is self %d\n", fcntl(p[0], F_GETOWN) == getpid());
    printf("other end's owner %d\n", fcntl(p[1], F_GETOWN));
    fcntl(p[0], F_GETOWN_EX, &ex);
    printf("  type %d pid is self %d\n", ex.type, ex.pid == getpid());
    setpgid(0, 0);
    SHOW("setown group", fcntl(p[0], F_SETOWN, -getpgrp()));
    printf("getown is -group %d\n", fcntl(p[0], F_GETOWN) == -getpgrp());
    /* glibc asks F_GETOWN_EX; the raw call returns the negative group, which
       syscall() takes for an error when the group is below 4096 (fcntl(2),
       BUGS): -1 with errno the group, whatever the host's pids are */
    errno = 0;
    long raw = syscall(SYS_fcntl, p[0], F_GETOWN);
    printf("raw getown is -group %d\n", raw == -getpgrp() || (raw == -1 && errno == getpgrp()));
    fcntl(p[0], F_GETOWN_EX, &ex);
    printf("  type %d pid is group %d\n", ex.type, ex.pid == getpgrp());
    ex.type = F_OWNER_TID;
    ex.pid = gettid();
    SHOW("setown_ex tid", fcntl(p[0], F_SETOWN_EX, &ex));
    printf("getown is tid %d\n", fcntl(p[0], F_GETOWN) == gettid());
    ex.type = 3;
    SHOW("setown_ex type 3", fcntl(p[0], F_SETOWN_EX, &ex));
    SHOW("setown_ex bad pointer", fcntl(p[0], F_SETOWN_EX, (void *)8));
    SHOW("getown_ex bad pointer", fcntl(p[0], F_GETOWN_EX, (void *)8));
    SHOW("setown INT_MIN", fcntl(p[0], F_SETOWN, -2147483647 - 1));
    SHOW("setown none", fcntl(p[0], F_SETOWN, 0));
    SHOW("getown none", fcntl(p[0], F_GETOWN));
    fcntl(p[0], F_GETOWN_EX, &ex);
    printf("  type %d pid %d\n", ex.type, ex.pid);
    pid_t child = fork();
    if (!child) {
        pause();
        _exit(0);
    }
    SHOW("setown child", fcntl(p[0], F_SETOWN, child) == 0);
    kill(child, SIGKILL);
    siginfo_t si;
    waitid(P_PID, child, &si, WEXITED | WNOWAIT);
    printf("getown of a zombie is it %d\n", fcntl(p[0], F_GETOWN) == child);
    waitpid(child, NULL, 0);
    SHOW("getown once reaped", fcntl(p[0], F_GETOWN));
    SHOW("setown reaped", fcntl(p[0], F_SETOWN, child));
    SHOW("setsig 0", fcntl(p[0], F_SETSIG, 0));
    SHOW("setsig rtmin+1", fcntl(p[0], F_SETSIG, SIGRTMIN + 1));
    printf("getsig is rtmin+1 %d\n", fcntl(p[0], F_GETSIG) == SIGRTMIN + 1);
    SHOW("setsig 64", fcntl(p[0], F_SETSIG, 64));
    SHOW("setsig 65", fcntl(p[0], F_SETSIG, 65));
    SHOW("setsig -1", fcntl(p[0], F_SETSIG, -1));
    SHOW("getsig", fcntl(p[0], F_GETSIG));

    int f = open(at("file"), O_RDWR | O_CREAT, 0644);
    int on = 1, off = 0;
    SHOW("file setfl O_ASYNC", fcntl(f, F_SETFL, O_ASYNC));
    printf("file getfl O_ASYNC %d\n", !!(fcntl(f, F_GETFL) & O_ASYNC));
    SHOW("file FIOASYNC off with O_ASYNC", ioctl(f, FIOASYNC, &off));
    SHOW("file FIOASYNC on with O_ASYNC", ioctl(f, FIOASYNC, &on));
    fcntl(f, F_SETFL, 0);
    SHOW("file FIOASYNC off", ioctl(f, FIOASYNC, &off));
    SHOW("file FIOASYNC on", ioctl(f, FIOASYNC, &on));
    SHOW("file FIOASYNC bad pointer", ioctl(f, FIOASYNC, (void *)8));
    int e = eventfd(0, 0);
    SHOW("eventfd FIOASYNC on", ioctl(e, FIOASYNC, &on));
    SHOW("pipe FIOASYNC on", ioctl(p[0], FIOASYNC, &on));
    printf("pipe getfl O_ASYNC %d\n", !!(fcntl(p[0], F_GETFL) & O_ASYNC));
    SHOW("pipe FIOASYNC off", ioctl(p[0], FIOASYNC, &off));
    printf("pipe getfl O_ASYNC %d\n", !!(fcntl(p[0], F_GETFL) & O_ASYNC));
}

static void section_pipe(void) {
    block(SIGIO);
    setpgid(0, 0);
    int p[2];
    pipe(p);
    fcntl(p[0], F_SETOWN, getpid());
    write(p[1], "a", 1);
    taken("write, no O_ASYNC", SIGIO, p[0]);
    fcntl(p[0], F_SETFL, O_ASYNC);
    pid_t child = fork();
    if (!child) {
        write(p[1], "b", 1);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    taken("a child wrote", SIGIO, p[0]);
    char c[4];
    read(p[0], c, 2);
    taken("read", SIGIO, p[0]);
    fcntl(p[0], F_SETOWN, -getpgrp());
    write(p[1], "c", 1);
    taken("write, group owner", SIGIO, p[0]);
    fcntl(p[0], F_SETOWN, 0);
    write(p[1], "d", 1);
    taken("write, no owner", SIGIO, p[0]);

    /* F_SETSIG: si_code, si_band and si_fd, each end its own signal */
    int rt = SIGRTMIN, rt2 = SIGRTMIN + 1;
    block(rt);
    block(rt2);
    int r = dup(p[0]);        /* si_fd is the fd O_ASYNC was set by */
    fcntl(p[0], F_SETFL, 0);
    fcntl(r, F_SETOWN, getpid());
    fcntl(r, F_SETSIG, rt);
    fcntl(r, F_SETFL, O_ASYNC);
    fcntl(p[1], F_SETOWN, getpid());
    fcntl(p[1], F_SETSIG, rt2);
    fcntl(p[1], F_SETFL, O_ASYNC | O_NONBLOCK);
    write(p[1], "e", 1);
    taken("rt write", rt, r);
    taken("rt write, writer", rt2, p[1]);
    read(p[0], c, 3);
    taken("rt read", rt, r);
    taken("rt read, writer", rt2, p[1]);
    fcntl(r, F_SETSIG, SIGIO);
    write(p[1], "f", 1);
    taken("setsig SIGIO", SIGIO, r);
    block(SIGUSR1);
    fcntl(r, F_SETSIG, SIGUSR1);
    write(p[1], "g", 1);
    taken("setsig SIGUSR1", SIGUSR1, r);
    fcntl(r, F_SETSIG, rt);
    close(p[1]);
    taken("writer closed", rt, r);
    taken("writer closed, writer", rt2, p[1]);
}

static void section_socket(void) {
    int rt = SIGRTMIN;
    block(rt);
    int sv[2], on = 1;
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fcntl(sv[0], F_SETOWN, getpid());
    fcntl(sv[0], F_SETSIG, rt);
    SHOW("FIOASYNC on", ioctl(sv[0], FIOASYNC, &on));
    printf("getfl O_ASYNC %d\n", !!(fcntl(sv[0], F_GETFL) & O_ASYNC));
    write(sv[1], "hello", 5);
    taken("peer wrote", rt, sv[0]);
    char buf[65536];
    read(sv[0], buf, sizeof buf);
    taken("read", rt, sv[0]);
    write(sv[0], "x", 1);
    taken("wrote", rt, sv[0]);

    /* room: told once a sender found none, and then only once */
    fcntl(sv[1], F_SETOWN, getpid());
    fcntl(sv[1], F_SETSIG, rt);
    fcntl(sv[1], F_SETFL, O_ASYNC | O_NONBLOCK);
    read(sv[1], buf, sizeof buf);
    taken("peer read, no sender waiting", rt, sv[1]);
    long sent = 0;
    ssize_t n;
    while ((n = write(sv[1], buf, sizeof buf)) > 0)
        sent += n;
    printf("filled: %s\n", strerrorname_np(errno));
    taken("filled", rt, sv[0]);
    while (sent > 0 && (n = read(sv[0], buf, sizeof buf)) > 0)
        sent -= n;
    taken("drained, sender", rt, sv[1]);
    fcntl(sv[1], F_SETFL, 0);
    shutdown(sv[1], SHUT_WR);
    taken("peer shut down writing", rt, sv[0]);
    close(sv[1]);
    taken("peer closed", rt, sv[0]);
    close(sv[0]);

    /* a listener hears of a connection */
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", at("sock"));
    unlink(a.sun_path);
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 4);
    fcntl(l, F_SETOWN, getpid());
    fcntl(l, F_SETSIG, rt);
    fcntl(l, F_SETFL, O_ASYNC);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    SHOW("connect", connect(c, (struct sockaddr *)&a, sizeof a));
    taken("connected", rt, l);

    /* a datagram pair */
    socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
    fcntl(sv[0], F_SETOWN, getpid());
    fcntl(sv[0], F_SETSIG, rt);
    fcntl(sv[0], F_SETFL, O_ASYNC);
    send(sv[1], "d", 1, 0);
    taken("datagram", rt, sv[0]);
}

static void section_inotify(void) {
    int rt = SIGRTMIN;
    block(rt);
    int in = inotify_init1(IN_NONBLOCK);
    inotify_add_watch(in, base, IN_CREATE);
    fcntl(in, F_SETOWN, getpid());
    fcntl(in, F_SETSIG, rt);
    fcntl(in, F_SETFL, O_ASYNC | O_NONBLOCK);
    printf("getfl O_ASYNC %d\n", !!(fcntl(in, F_GETFL) & O_ASYNC));
    close(open(at("a"), O_WRONLY | O_CREAT, 0644));
    taken("an event queued", rt, in);
    char buf[4096];
    read(in, buf, sizeof buf);
    taken("read", rt, in);
    int e = eventfd(0, 0);
    fcntl(e, F_SETOWN, getpid());
    fcntl(e, F_SETSIG, rt);
    fcntl(e, F_SETFL, O_ASYNC);
    printf("eventfd getfl O_ASYNC %d\n", !!(fcntl(e, F_GETFL) & O_ASYNC));
    eventfd_write(e, 1);
    taken("eventfd written (no fasync on Linux)", rt, e);
}

static void section_dnotify(void) {
    int rt = SIGRTMIN;
    block(rt);
    block(SIGIO);
    int d = open(base, O_RDONLY | O_DIRECTORY);
    SHOW("notify CREATE|MULTISHOT", fcntl(d, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
    printf("owner is self %d\n", fcntl(d, F_GETOWN) == getpid());
    close(open(at("a"), O_WRONLY | O_CREAT, 0644));
    taken("create a, plain SIGIO", SIGIO, d);
    fcntl(d, F_SETSIG, rt);
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "f%d", i);
        close(open(at(name), O_WRONLY | O_CREAT, 0644));
        taken(name, rt, d);
    }
    mkdir(at("sub"), 0755);
    taken("mkdir", rt, d);
    unlink(at("f0"));
    taken("unlink, not asked", rt, d);
    SHOW("notify DELETE too", fcntl(d, F_NOTIFY, DN_DELETE));
    unlink(at("f1"));
    taken("unlink", rt, d);
    close(open(at("f4"), O_WRONLY | O_CREAT, 0644));
    taken("create, still multishot", rt, d);
    SHOW("notify ATTRIB|RENAME|MODIFY|MULTISHOT",
         fcntl(d, F_NOTIFY, DN_ATTRIB | DN_RENAME | DN_MODIFY | DN_MULTISHOT));
    chmod(at("f4"), 0600);
    taken("chmod", rt, d);
    rename(at("f4"), at("f5"));
    taken("rename", rt, d);
    int w = open(at("f5"), O_WRONLY);
    write(w, "x", 1);
    taken("write", rt, d);
    close(w);
    SHOW("notify none", fcntl(d, F_NOTIFY, 0));
    close(open(at("f6"), O_WRONLY | O_CREAT, 0644));
    taken("create, no watch", rt, d);

    /* one-shot */
    SHOW("notify CREATE", fcntl(d, F_NOTIFY, DN_CREATE));
    close(open(at("g0"), O_WRONLY | O_CREAT, 0644));
    taken("one-shot g0", rt, d);
    close(open(at("g1"), O_WRONLY | O_CREAT, 0644));
    taken("one-shot g1", rt, d);

    /* a close of any fd of it ends the watch */
    int d2 = dup(d);
    fcntl(d2, F_NOTIFY, DN_CREATE | DN_MULTISHOT);
    close(d);
    close(open(at("h0"), O_WRONLY | O_CREAT, 0644));
    taken("after a close of another fd", rt, d2);
    d = open(base, O_RDONLY | O_DIRECTORY);
    SHOW("notify by a new fd", fcntl(d, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
    close(open(at("h1"), O_WRONLY | O_CREAT, 0644));
    taken("the owner's signal (none set: SIGIO)", SIGIO, d);
    /* F_NOTIFY names the caller when the owner was cleared */
    fcntl(d2, F_SETOWN, 0);
    fcntl(d2, F_SETSIG, rt);
    SHOW("notify, owner cleared", fcntl(d2, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
    printf("owner is self %d\n", fcntl(d2, F_GETOWN) == getpid());

    int f = open(at("a"), O_RDONLY);
    SHOW("notify on a file", fcntl(f, F_NOTIFY, DN_CREATE));
    SHOW("notify 0 on a file", fcntl(f, F_NOTIFY, 0));
    SHOW("notify MULTISHOT alone on a file", fcntl(f, F_NOTIFY, DN_MULTISHOT));
    int p[2];
    pipe(p);
    SHOW("notify on a pipe", fcntl(p[0], F_NOTIFY, DN_CREATE));
    SHOW("notify MULTISHOT alone", fcntl(d, F_NOTIFY, DN_MULTISHOT));
    SHOW("notify unknown bits", fcntl(d, F_NOTIFY, 0x40));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return 2;
    for (int i = 2; i < argc; i++) {
        snprintf(base, sizeof base, "%s/sigio-%s", argv[1], argv[i]);
        mkdir(base, 0755);
        printf("== %s\n", argv[i]);
        if (!strcmp(argv[i], "owner")) section_owner();
        else if (!strcmp(argv[i], "pipe")) section_pipe();
        else if (!strcmp(argv[i], "socket")) section_socket();
        else if (!strcmp(argv[i], "dnotify")) section_dnotify();
        else if (!strcmp(argv[i], "inotify")) section_inotify();
        else { printf("unknown section\n"); return 2; }
    }
    return 0;
}
