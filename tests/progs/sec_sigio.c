/* What a hostile guest can do with a file's owner and its signals:
   tests/security/test_hostile_sigio.py runs the "uid" and "pointers"
   sections natively and in a guest and wants the same output, and the
   "flood" section in a guest, where dnotify's watches are bounded. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHOW(label, expr) do { \
    errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

static const char *dir;

static int pending(int sig) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    struct timespec zero = {0, 0};
    return sigtimedwait(&s, NULL, &zero) == sig;
}

/* A child as uid (or as root, -1) names this process the owner of the pipe's
   read end; then this process writes: does SIGIO reach it? */
static void named_by(int uid) {
    int p[2], ready[2];
    pipe(p);
    pipe(ready);
    pid_t parent = getpid(), child = fork();
    if (!child) {
        if (uid >= 0 && setresuid(uid, uid, uid))
            _exit(1);
        fcntl(p[0], F_SETOWN, parent);
        fcntl(p[0], F_SETFL, O_ASYNC);
        write(ready[1], "r", 1);
        _exit(0);
    }
    char c;
    read(ready[0], &c, 1);
    waitpid(child, NULL, 0);
    write(p[1], "x", 1);
    printf("named by uid %d: SIGIO %s\n", uid, pending(SIGIO) ? "came" : "did not come");
    close(p[0]);
    close(p[1]);
    close(ready[0]);
    close(ready[1]);
}

static void section_uid(void) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGIO);
    sigprocmask(SIG_BLOCK, &s, NULL);
    named_by(-1);
    named_by(1000);
    /* root names an unprivileged process: it may signal anyone */
    int p[2], go[2];
    pipe(p);
    pipe(go);
    pid_t child = fork();
    if (!child) {
        setresuid(1000, 1000, 1000);
        char c;
        read(go[0], &c, 1);
        printf("unprivileged owner: SIGIO %s\n", pending(SIGIO) ? "came" : "did not come");
        _exit(0);
    }
    fcntl(p[0], F_SETOWN, child);
    fcntl(p[0], F_SETFL, O_ASYNC);
    write(p[1], "x", 1);
    write(go[1], "g", 1);
    waitpid(child, NULL, 0);
    /* the owner is gone: a write signals nobody, and breaks nothing */
    write(p[1], "y", 1);
    SHOW("getown of a reaped owner", fcntl(p[0], F_GETOWN));
    /* a dnotify watch named by another uid */
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    child = fork();
    if (!child) {
        setresuid(1000, 1000, 1000);
        fcntl(d, F_SETOWN, getppid());
        _exit(0);
    }
    waitpid(child, NULL, 0);
    SHOW("notify", fcntl(d, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
    char name[512];
    snprintf(name, sizeof name, "%s/made", dir);
    close(open(name, O_WRONLY | O_CREAT, 0644));
    printf("dnotify named by uid 1000: SIGIO %s\n", pending(SIGIO) ? "came" : "did not come");
}

static void section_pointers(void) {
    int p[2];
    pipe(p);
    static const struct f_owner_ex ro = {F_OWNER_PID, 1};
    void *kernel = (void *)0xffff800000000000UL;
    SHOW("setown_ex kernel pointer", fcntl(p[0], F_SETOWN_EX, kernel));
    SHOW("getown_ex kernel pointer", fcntl(p[0], F_GETOWN_EX, kernel));
    SHOW("getown_ex read-only", fcntl(p[0], F_GETOWN_EX, &ro));
    SHOW("getown_ex last byte of the page", fcntl(p[0], F_GETOWN_EX, (void *)0xfffffffffffffffcUL));
    SHOW("FIOASYNC kernel pointer", ioctl(p[0], FIOASYNC, kernel));
    SHOW("setsig 2^40 (an int: 0)", fcntl(p[0], F_SETSIG, 1L << 40));
    SHOW("setsig 2^32+10 (an int: 10)", fcntl(p[0], F_SETSIG, (1L << 32) + 10));
    SHOW("getsig", fcntl(p[0], F_GETSIG));
    SHOW("setown 2^32 + self (an int)", fcntl(p[0], F_SETOWN, (1L << 32) + getpid()) );
    printf("getown is self %d\n", fcntl(p[0], F_GETOWN) == getpid());
    SHOW("notify bad fd", fcntl(4000, F_NOTIFY, DN_CREATE));
    SHOW("setown bad fd", fcntl(-1, F_SETOWN, 0));
    int path = open(dir, O_PATH);
    SHOW("notify O_PATH", fcntl(path, F_NOTIFY, DN_CREATE));
    SHOW("setown O_PATH", fcntl(path, F_SETOWN, getpid()));
}

static void section_flood(void) {
    struct rlimit r = {20000, 20000};
    setrlimit(RLIMIT_NOFILE, &r);
    static int fds[20000];
    int n = 0, made = 0;
    for (; n < 20000; n++) {
        fds[n] = open(dir, O_RDONLY | O_DIRECTORY);
        if (fds[n] < 0)
            break;
        if (fcntl(fds[n], F_NOTIFY, DN_CREATE | DN_MULTISHOT) < 0) {
            printf("watches: %d then %s\n", made, strerrorname_np(errno));
            n++;
            break;
        }
        made++;
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    SHOW("closed, a watch again", fcntl(d, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3) return 2;
    dir = argv[1];
    printf("== %s\n", argv[2]);
    if (!strcmp(argv[2], "uid")) section_uid();
    else if (!strcmp(argv[2], "pointers")) section_pointers();
    else if (!strcmp(argv[2], "flood")) section_flood();
    else return 2;
    return 0;
}
