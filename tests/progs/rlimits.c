/* Resource limits are a process's own, natively and in a guest: a fork
 * inherits them, exec keeps them, a setrlimit in one process changes no
 * other, every thread of a process sees the same ones, and what they bound
 * (fds, the exec argument space, processes per user) is the caller's.
 * prlimit64 reaches another process when its real, effective and saved
 * uids and gids are all the caller's real ones.  Runs as root; drops
 * CAP_SYS_RESOURCE first, which the host's root may lack, so that raising
 * a hard limit or prlimit on another user is EPERM both ways.
 * `rlimits show`: what an exec'ed copy starts with. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define USER 54321              /* a uid no other process on the host has */
#define BIG (100 << 10)         /* two such arguments pass 128 KiB */

static const char *err(long r) {
    if (r >= 0) return "ok";
    switch (errno) {
    case EPERM: return "EPERM";
    case EINVAL: return "EINVAL";
    case ESRCH: return "ESRCH";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case E2BIG: return "E2BIG";
    default: return strerror(errno);
    }
}

#define CHECK(what, call) printf("%-40s %s\n", what, err(call))

static const char *num(rlim_t v, char *buf) {
    if (v == RLIM_INFINITY) return "inf";
    sprintf(buf, "%lu", (unsigned long)v);
    return buf;
}

static void show_limit(const char *who, const char *name, struct rlimit rl) {
    char a[32], b[32];
    printf("%s %s %s/%s\n", who, name, num(rl.rlim_cur, a), num(rl.rlim_max, b));
}

static void show(const char *who) {
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    show_limit(who, "NOFILE", rl);
    getrlimit(RLIMIT_STACK, &rl);
    show_limit(who, "STACK", rl);
}

static int prlimit_(pid_t pid, int res, const struct rlimit *new, struct rlimit *old) {
    return (int)syscall(SYS_prlimit64, pid, res, new, old);
}

static void set(int res, rlim_t soft, rlim_t hard) {
    struct rlimit rl = {soft, hard};
    if (setrlimit(res, &rl)) { perror("setrlimit"); exit(2); }
}

static void drop_sys_resource(void) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d)) { perror("capget"); exit(2); }
    d[0].effective &= ~(1u << CAP_SYS_RESOURCE);
    d[0].permitted &= ~(1u << CAP_SYS_RESOURCE);
    if (syscall(SYS_capset, &h, d)) { perror("capset"); exit(2); }
}

static void reap(pid_t pid) {
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        printf("child %s: status %#x\n", "failed", status);
}

static char *big(char c) {
    char *s = malloc(BIG);
    memset(s, c, BIG - 1);
    s[BIG - 1] = 0;
    return s;
}

static void exec_show(const char *who, int with_big_args) {
    char *argv[] = {"/bin/rlimits", "show", (char *)who, NULL, NULL, NULL};
    if (with_big_args) { argv[3] = big('a'); argv[4] = big('b'); }
    fflush(stdout);
    execv(argv[0], argv);
    printf("%s exec %s\n", who, err(-1));
    fflush(stdout);
    _exit(0);
}

/* --- fork and exec ---------------------------------------------------------- */

static void fork_and_exec(void) {
    pid_t pid = fork();
    if (pid == 0) {
        show("child");                           /* the parent's */
        set(RLIMIT_NOFILE, 16, 16);
        show("child");
        CHECK("child: dup2 to fd 20 past its limit", dup2(0, 20));
        CHECK("child: F_DUPFD from 16", fcntl(0, F_DUPFD, 16));
        CHECK("child: dup2 to fd 15", dup2(0, 15));
        exec_show("child-exec", 0);              /* exec keeps them */
    }
    reap(pid);
    show("parent");                              /* not the child's */
    CHECK("parent: dup2 to fd 20", dup2(0, 20));
    close(20);

    pid = fork();                                /* a small stack, a small exec */
    if (pid == 0) {
        set(RLIMIT_STACK, 256 << 10, 64 << 20);
        exec_show("small-stack", 1);
    }
    reap(pid);
    pid = fork();                                /* the parent's 8 MiB stack */
    if (pid == 0)
        exec_show("parent-stack", 1);
    reap(pid);
}

/* --- prlimit64 on others ---------------------------------------------------- */

/* A child with these ids that waits until its pipe closes, then shows its limits. */
struct waiter { pid_t pid; int go; };

static struct waiter waiter(const char *name, uid_t uid, gid_t gid, uid_t suid) {
    int go[2];
    pipe(go);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (uid && (setresgid(gid, gid, gid) || setresuid(uid, uid, suid))) {
            perror("setres");
            _exit(2);
        }
        for (int fd = 3; fd < 64; fd++)         /* other waiters' pipes too */
            if (fd != go[0]) close(fd);
        read(go[0], &c, 1);
        show(name);
        _exit(0);
    }
    close(go[0]);
    return (struct waiter){pid, go[1]};
}

static void release(struct waiter w) {
    close(w.go);
    reap(w.pid);
}

static void others(void) {
    struct rlimit old = {0, 0}, new = {32, 64}, bad = {10, 5}, up = {64, 256};
    struct waiter w_root = waiter("root-waiter", 0, 0, 0);
    struct waiter w_same = waiter("user-waiter", USER, USER, USER);
    struct waiter w_suid0 = waiter("suid0-waiter", USER, USER, 0);
    struct waiter w_gid = waiter("gid-waiter", USER, 100, USER);
    pid_t root = w_root.pid, same = w_same.pid, suid0 = w_suid0.pid, other_gid = w_gid.pid;
    pid_t gone = fork();
    if (gone == 0) _exit(0);
    reap(gone);

    CHECK("root: prlimit root child, set", prlimit_(root, RLIMIT_NOFILE, &new, &old));
    show_limit("root: its old", "NOFILE", old);
    CHECK("root: prlimit root child, read", prlimit_(root, RLIMIT_NOFILE, NULL, &old));
    show_limit("root: now", "NOFILE", old);
    CHECK("root: prlimit resource 16", prlimit_(root, 16, NULL, &old));
    CHECK("root: prlimit soft > hard", prlimit_(root, RLIMIT_NOFILE, &bad, NULL));
    CHECK("root: prlimit child, raise hard", prlimit_(root, RLIMIT_NOFILE, &up, NULL));
    CHECK("root: prlimit a reaped pid", prlimit_(gone, RLIMIT_NOFILE, NULL, &old));
    CHECK("root: prlimit pid -1", prlimit_(-1, RLIMIT_NOFILE, NULL, &old));
    CHECK("root: prlimit user's child, read", prlimit_(same, RLIMIT_NOFILE, NULL, &old));
    CHECK("root: raise own hard NOFILE", prlimit_(0, RLIMIT_NOFILE, &up, NULL));
    CHECK("root: setrlimit soft > hard", setrlimit(RLIMIT_NOFILE, &bad));

    pid_t user = fork();
    if (user == 0) {
        setresgid(USER, USER, USER);
        setresuid(USER, USER, USER);
        CHECK("user: prlimit same ids, set", prlimit_(same, RLIMIT_NOFILE, &new, NULL));
        CHECK("user: prlimit saved uid 0, read", prlimit_(suid0, RLIMIT_NOFILE, NULL, &old));
        CHECK("user: prlimit other gid, read", prlimit_(other_gid, RLIMIT_NOFILE, NULL, &old));
        CHECK("user: prlimit root, read", prlimit_(root, RLIMIT_NOFILE, NULL, &old));
        CHECK("user: prlimit root, set", prlimit_(root, RLIMIT_NOFILE, &new, NULL));
        CHECK("user: prlimit parent, read", prlimit_(getppid(), RLIMIT_NOFILE, NULL, &old));
        _exit(0);
    }
    reap(user);
    release(w_root);
    release(w_same);
    release(w_suid0);
    release(w_gid);
    show("root");
}

/* --- threads ---------------------------------------------------------------- */

static pthread_barrier_t barrier;
static pid_t worker_tid;

static void *worker(void *arg) {
    (void)arg;
    worker_tid = (pid_t)syscall(SYS_gettid);
    struct rlimit rl = {48, 128};
    CHECK("thread: prlimit its process", prlimit_(getpid(), RLIMIT_NOFILE, &rl, NULL));
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    show("thread");
    return NULL;
}

static void threads(void) {
    pthread_t th;
    struct rlimit old;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_create(&th, NULL, worker, NULL);
    pthread_barrier_wait(&barrier);
    show("main");
    CHECK("main: prlimit the thread's tid, read", prlimit_(worker_tid, RLIMIT_NOFILE, NULL, &old));
    show_limit("main: by tid", "NOFILE", old);
    CHECK("main: dup2 to fd 50", dup2(0, 50));
    set(RLIMIT_NOFILE, 40, 128);
    pthread_barrier_wait(&barrier);
    pthread_join(th, NULL);
    set(RLIMIT_NOFILE, 64, 128);
}

/* --- RLIMIT_NPROC: the forking process's own ------------------------------- */

static void nproc(void) {
    pid_t user = fork();
    if (user == 0) {
        setresgid(USER, USER, USER);
        setresuid(USER, USER, USER);
        pid_t low = fork();
        if (low == 0) {                     /* two processes of USER: past 1 */
            set(RLIMIT_NPROC, 1, 1);
            pid_t p = fork();
            if (p == 0) _exit(0);
            printf("%-40s %s\n", "low: fork with NPROC 1", err(p));
            if (p > 0) reap(p);
            _exit(0);
        }
        reap(low);
        pid_t p = fork();
        if (p == 0) _exit(0);
        printf("%-40s %s\n", "user: fork with its own NPROC", err(p));
        if (p > 0) reap(p);
        _exit(0);
    }
    reap(user);
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "show")) {
        show(argv[2]);
        printf("%s argc=%d\n", argv[2], argc);
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    drop_sys_resource();
    set(RLIMIT_NOFILE, 64, 128);
    set(RLIMIT_STACK, 8 << 20, 64 << 20);
    show("main");
    fork_and_exec();
    others();
    threads();
    nproc();
    show("main");
    printf("-- exit 0\n");
    return 0;
}
