/* flock, POSIX record locks and OFD locks, one section per argument, in the
   directory given first: tests/guest/fs/test_locks.py runs each natively and
   in a guest and wants the same output.  Processes meet through pipes; no
   outcome depends on how long anything takes (where two could race to a
   deadlock, the program prints that one of them was refused, not which). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHOW(label, expr) do { \
    errno = 0; long r_ = (long)(expr); \
    printf("%s = %ld%s%s\n", label, r_, r_ < 0 ? " " : "", r_ < 0 ? strerrorname_np(errno) : ""); \
} while (0)

static const char *dir;

static int make(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    if (fd < 0) { perror(path); exit(1); }
    return fd;
}

static int reopen(const char *name, int flags) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return open(path, flags);
}

static int setlk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

/* What F_GETLK (or F_OFD_GETLK) says about a lock of type over start/len. */
static void getlk(const char *label, int fd, int cmd, short type, off_t start, off_t len,
                  pid_t expect_pid) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    errno = 0;
    int r = fcntl(fd, cmd, &fl);
    if (r < 0) { printf("%s = -1 %s\n", label, strerrorname_np(errno)); return; }
    if (fl.l_type == F_UNLCK) { printf("%s: unlocked\n", label); return; }
    printf("%s: %s %ld+%ld pid %s\n", label, fl.l_type == F_RDLCK ? "read" : "write",
           (long)fl.l_start, (long)fl.l_len,
           fl.l_pid == -1 ? "-1" : fl.l_pid == expect_pid ? "as expected" : "WRONG");
}

static void wait_child(void) {
    int st;
    wait(&st);
    if (!WIFEXITED(st) || WEXITSTATUS(st))
        printf("child status %#x\n", st);
}

static void on_alarm(int sig) { (void)sig; }

static void interrupt_soon(void) {
    struct sigaction sa = {.sa_handler = on_alarm};     /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {.it_value = {0, 50000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

static void section_flock(void) {
    int a = make("flock"), b = reopen("flock", O_RDONLY), p[2];
    SHOW("sh a", flock(a, LOCK_SH));
    SHOW("sh b", flock(b, LOCK_SH | LOCK_NB));
    SHOW("ex b nb", flock(b, LOCK_EX | LOCK_NB));
    SHOW("un b", flock(b, LOCK_UN));
    SHOW("ex b nb now", flock(b, LOCK_EX | LOCK_NB));
    SHOW("sh a nb", flock(a, LOCK_SH | LOCK_NB));     /* a lost its lock when it converted */
    SHOW("bad op", flock(a, 3));
    SHOW("mand", flock(a, LOCK_MAND | LOCK_READ));
    SHOW("bad fd", flock(99, LOCK_SH));
    int c = dup(b);
    close(b);                    /* the description lives on in c: the lock stays */
    SHOW("ex a nb, c holds", flock(a, LOCK_EX | LOCK_NB));
    pipe(p);
    if (fork() == 0) {           /* the child shares the description: same lock */
        SHOW("child ex c nb", flock(c, LOCK_EX | LOCK_NB));
        SHOW("child un c", flock(c, LOCK_UN));
        _exit(0);
    }
    wait_child();
    SHOW("ex a nb, child unlocked c", flock(a, LOCK_EX | LOCK_NB));
    flock(a, LOCK_UN);
    /* a blocked flock: the child waits until the parent lets go */
    SHOW("ex a", flock(a, LOCK_EX));
    if (fork() == 0) {
        int d = reopen("flock", O_RDONLY);
        SHOW("child ex d nb", flock(d, LOCK_EX | LOCK_NB));
        write(p[1], "w", 1);
        SHOW("child ex d (waits)", flock(d, LOCK_EX));
        write(p[1], "g", 1);
        _exit(0);
    }
    char ch;
    read(p[0], &ch, 1);
    flock(a, LOCK_UN);
    read(p[0], &ch, 1);
    printf("child got it: %c\n", ch);
    wait_child();
    /* a blocked flock cut short by a signal with no SA_RESTART: EINTR */
    SHOW("ex a again", flock(a, LOCK_EX));
    if (fork() == 0) {
        int d = reopen("flock", O_RDONLY);
        interrupt_soon();
        SHOW("child ex d, interrupted", flock(d, LOCK_EX));
        _exit(0);
    }
    wait_child();
    close(a);                    /* the last fd of a's description: its lock goes */
    SHOW("ex c nb after close(a)", flock(c, LOCK_EX | LOCK_NB));
    close(c);
}

static void section_posix(void) {
    int fd = make("posix"), p[2], q[2];
    pid_t me = getpid();
    write(fd, "0123456789", 10);
    SHOW("wr 0+10", setlk(fd, F_SETLK, F_WRLCK, 0, 10));
    SHOW("un 3+2 (split)", setlk(fd, F_SETLK, F_UNLCK, 3, 2));
    SHOW("rd 20+0 (to EOF)", setlk(fd, F_SETLK, F_RDLCK, 20, 0));
    SHOW("rd 15-5 (negative len)", setlk(fd, F_SETLK, F_RDLCK, 15, -5));
    SHOW("neg start", setlk(fd, F_SETLK, F_RDLCK, -1, 5));
    SHOW("neg len before 0", setlk(fd, F_SETLK, F_RDLCK, 2, -5));
    SHOW("bad type", setlk(fd, F_SETLK, 7, 0, 1));
    struct flock fl = {.l_type = F_RDLCK, .l_whence = 9};
    SHOW("bad whence", fcntl(fd, F_SETLK, &fl));
    SHOW("getlk unlck", setlk(fd, F_GETLK, F_UNLCK, 0, 1));
    SHOW("bad pointer", fcntl(fd, F_SETLK, (void *)8));
    int ro = reopen("posix", O_RDONLY);
    SHOW("wrlck on O_RDONLY", setlk(ro, F_SETLK, F_WRLCK, 100, 1));
    getlk("own locks never conflict", fd, F_GETLK, F_WRLCK, 0, 0, me);
    pipe(p); pipe(q);
    pid_t child = fork();
    if (child == 0) {
        /* what the parent holds, seen from another process */
        getlk("child sees 0", fd, F_GETLK, F_WRLCK, 0, 1, getppid());
        getlk("child sees 3", fd, F_GETLK, F_WRLCK, 3, 2, getppid());
        getlk("child sees 5..", fd, F_GETLK, F_RDLCK, 5, 100, getppid());
        getlk("child sees 12", fd, F_GETLK, F_WRLCK, 12, 1, getppid());
        getlk("child sees 1000", fd, F_GETLK, F_WRLCK, 1000, 1, getppid());
        getlk("child read at 1000", fd, F_GETLK, F_RDLCK, 1000, 1, getppid());
        SHOW("child wr 3+2", setlk(fd, F_SETLK, F_WRLCK, 3, 2));
        SHOW("child wr 4+2", setlk(fd, F_SETLK, F_WRLCK, 4, 2));
        SHOW("child rd 25+1", setlk(fd, F_SETLK, F_RDLCK, 25, 1));
        write(p[1], "1", 1);
        char ch;
        read(q[0], &ch, 1);       /* the parent closed another fd of the file */
        SHOW("child wr 0+10 now", setlk(fd, F_SETLK, F_WRLCK, 0, 10));
        _exit(0);
    }
    char ch;
    read(p[0], &ch, 1);
    getlk("parent sees the child's 3+2", fd, F_GETLK, F_WRLCK, 0, 0, child);
    close(ro);                    /* any close of the file drops this process's locks */
    write(q[1], "1", 1);
    wait_child();
    /* merging: adjacent ranges of one kind become one */
    int m = make("merge");
    setlk(m, F_SETLK, F_WRLCK, 0, 5);
    setlk(m, F_SETLK, F_WRLCK, 5, 5);
    setlk(m, F_SETLK, F_RDLCK, 2, 2);
    if (fork() == 0) {
        getlk("merged 0", m, F_GETLK, F_WRLCK, 0, 0, getppid());
        getlk("merged 2", m, F_GETLK, F_WRLCK, 2, 0, getppid());
        getlk("merged 4", m, F_GETLK, F_WRLCK, 4, 0, getppid());
        getlk("merged 4 read", m, F_GETLK, F_RDLCK, 4, 0, getppid());
        _exit(0);
    }
    wait_child();
    close(m);
}

/* Two processes each holding what the other wants: one of them is refused
   with EDEADLK (whichever asks second), the other then gets its lock. */
static void section_deadlock(void) {
    int fd = make("deadlock"), p[2], r[2];
    pipe(p); pipe(r);
    setlk(fd, F_SETLK, F_WRLCK, 0, 1);
    if (fork() == 0) {
        setlk(fd, F_SETLK, F_WRLCK, 1, 1);
        write(p[1], "1", 1);
        int got = setlk(fd, F_SETLKW, F_WRLCK, 0, 1);
        int e = got < 0 ? errno : 0;
        if (got < 0)
            setlk(fd, F_SETLK, F_UNLCK, 1, 1);
        write(r[1], e == EDEADLK ? "D" : got == 0 ? "G" : "?", 1);
        _exit(0);
    }
    char ch, theirs;
    read(p[0], &ch, 1);
    int got = setlk(fd, F_SETLKW, F_WRLCK, 1, 1);
    int e = got < 0 ? errno : 0;
    if (got < 0)
        setlk(fd, F_SETLK, F_UNLCK, 0, 1);
    char mine = e == EDEADLK ? 'D' : got == 0 ? 'G' : '?';
    if (mine == 'G')
        setlk(fd, F_SETLK, F_UNLCK, 0, 2);      /* let the child finish if it waits */
    read(r[0], &theirs, 1);
    wait_child();
    printf("one refused with EDEADLK, one granted: %s\n",
           (mine == 'D' && theirs == 'G') || (mine == 'G' && theirs == 'D') ? "yes" : "no");
    /* a waiter cut short by a signal with no SA_RESTART: EINTR */
    setlk(fd, F_SETLK, F_WRLCK, 0, 0);
    if (fork() == 0) {
        interrupt_soon();
        SHOW("child setlkw, interrupted", setlk(fd, F_SETLKW, F_RDLCK, 5, 1));
        _exit(0);
    }
    wait_child();
    close(fd);
}

static void section_ofd(void) {
    int a = make("ofd"), b = reopen("ofd", O_RDWR);
    SHOW("ofd wr a 0+10", setlk(a, F_OFD_SETLK, F_WRLCK, 0, 10));
    SHOW("ofd wr b 5+1", setlk(b, F_OFD_SETLK, F_WRLCK, 5, 1));
    getlk("ofd b sees", b, F_OFD_GETLK, F_RDLCK, 0, 0, 0);
    getlk("posix sees ofd", b, F_GETLK, F_RDLCK, 0, 0, 0);
    struct flock fl = {.l_type = F_RDLCK, .l_pid = 1};
    SHOW("ofd with l_pid", fcntl(a, F_OFD_SETLK, &fl));
    SHOW("posix wr 20+1", setlk(b, F_SETLK, F_WRLCK, 20, 1));
    SHOW("ofd a wr 20+1 vs posix", setlk(a, F_OFD_SETLK, F_WRLCK, 20, 1));
    int c = dup(a);
    close(a);                    /* c still holds the description: its lock stays */
    SHOW("ofd b wr 0+1 after close(a)", setlk(b, F_OFD_SETLK, F_WRLCK, 0, 1));
    if (fork() == 0) {           /* inherited with the description */
        getlk("child ofd sees", b, F_OFD_GETLK, F_WRLCK, 0, 1, 0);
        _exit(0);
    }
    wait_child();
    close(c);
    SHOW("ofd b wr 0+1 after close(c)", setlk(b, F_OFD_SETLK, F_WRLCK, 0, 1));
    close(b);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) return 2;
    dir = argv[1];
    for (int i = 2; i < argc; i++) {
        printf("== %s\n", argv[i]);
        if (!strcmp(argv[i], "flock")) section_flock();
        else if (!strcmp(argv[i], "posix")) section_posix();
        else if (!strcmp(argv[i], "deadlock")) section_deadlock();
        else if (!strcmp(argv[i], "ofd")) section_ofd();
        else { printf("unknown section\n"); return 2; }
    }
    return 0;
}
