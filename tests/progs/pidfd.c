/* Process file descriptors, natively and in a guest: pidfd_open and its
 * errors, what fstat and /proc/self/fd show of a pidfd, poll/select/epoll
 * before and after a child's end and reaping, waitid(P_PIDFD) (exit, stop,
 * continue, WNOHANG, a non-blocking pidfd), pidfd_send_signal (siginfo,
 * scopes, forged codes, a user's EPERM against root), CLONE_PIDFD through
 * clone and clone3, pidfd_getfd of a child's pipe.  Prints no pid, fd or
 * inode number: only whether they match.  Runs as root; mounts /proc if
 * it is not there (natively: in a private mount namespace). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define USER 1000
#define PIDFD_NONBLOCK O_NONBLOCK

static const char *err(long r) {
    if (r >= 0) return "ok";
    return strerrorname_np(errno);
}

#define CHECK(what, call) printf("%-48s %s\n", what, err(call))

static int pidfd_open(pid_t pid, unsigned flags) {
    return (int)syscall(SYS_pidfd_open, pid, flags);
}

static int send_signal(int fd, int sig, siginfo_t *info, unsigned flags) {
    return (int)syscall(SYS_pidfd_send_signal, fd, sig, info, flags);
}

static int getfd(int fd, int target, unsigned flags) {
    return (int)syscall(SYS_pidfd_getfd, fd, target, flags);
}

static const char *bits(int revents) {
    static char buf[64];
    buf[0] = 0;
    if (revents & POLLIN) strcat(buf, "IN ");
    if (revents & POLLRDNORM) strcat(buf, "RDNORM ");
    if (revents & POLLOUT) strcat(buf, "OUT ");
    if (revents & POLLPRI) strcat(buf, "PRI ");
    if (revents & POLLHUP) strcat(buf, "HUP ");
    if (revents & POLLERR) strcat(buf, "ERR ");
    if (!buf[0]) strcat(buf, "none ");
    buf[strlen(buf) - 1] = 0;
    return buf;
}

static void show_poll(const char *when, int fd, int timeout) {
    struct pollfd p = {fd, POLLIN | POLLRDNORM | POLLOUT | POLLPRI, 0};
    int n = poll(&p, 1, timeout);
    printf("poll %-44s %d %s\n", when, n, bits(p.revents));
}

/* A child that waits for a byte on gate, then exits with code. */
static pid_t child_until(int gate[2], int code) {
    if (pipe(gate)) exit(2);
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        close(gate[1]);
        read(gate[0], &c, 1);
        _exit(code);
    }
    close(gate[0]);
    return pid;
}

static void test_open(void) {
    printf("-- pidfd_open\n");
    CHECK("bad flags", pidfd_open(getpid(), 1));
    CHECK("O_CLOEXEC as flags", pidfd_open(getpid(), O_CLOEXEC));
    CHECK("pid 0", pidfd_open(0, 0));
    CHECK("pid -1", pidfd_open(-1, 0));
    pid_t gone = fork();
    if (gone == 0) _exit(0);
    waitpid(gone, NULL, 0);
    CHECK("a reaped pid", pidfd_open(gone, 0));

    int fd = pidfd_open(getpid(), 0);
    CHECK("self", fd);
    printf("close-on-exec %d, flags O_RDWR %d\n", fcntl(fd, F_GETFD) == FD_CLOEXEC,
           fcntl(fd, F_GETFL) == O_RDWR);
    int nb = pidfd_open(getpid(), PIDFD_NONBLOCK);
    printf("PIDFD_NONBLOCK: O_NONBLOCK %d\n", !!(fcntl(nb, F_GETFL) & O_NONBLOCK));

    struct stat a, b, c;
    int gate[2];
    pid_t kid = child_until(gate, 0);
    int kfd = pidfd_open(kid, 0);
    fstat(fd, &a);
    fstat(nb, &b);
    fstat(kfd, &c);
    printf("fstat: mode %o uid %d nlink %lu size %ld\n", a.st_mode, a.st_uid,
           (unsigned long)a.st_nlink, (long)a.st_size);
    printf("same process same ino %d, another process another %d\n", a.st_ino == b.st_ino,
           a.st_ino != c.st_ino);
    char path[64], link[128];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, link, sizeof link - 1);
    link[n > 0 ? n : 0] = 0;
    printf("readlink %s\n", link);
    char buf[8];
    CHECK("read", read(fd, buf, sizeof buf));
    CHECK("write", write(fd, buf, sizeof buf));
    CHECK("lseek", lseek(fd, 0, SEEK_SET));
    write(gate[1], "x", 1);
    waitpid(kid, NULL, 0);
    close(gate[1]);
    close(kfd);
    close(nb);
    close(fd);
}

static void *sleeper(void *arg) {
    *(pid_t *)arg = (pid_t)syscall(SYS_gettid);
    pause();
    return NULL;
}

static void test_thread(void) {
    pid_t tid = 0;
    pthread_t th;
    pthread_create(&th, NULL, sleeper, &tid);
    while (!__atomic_load_n(&tid, __ATOMIC_SEQ_CST))
        sched_yield();
    CHECK("pidfd_open of a thread that does not lead", pidfd_open(tid, 0));
}

static void test_poll(void) {
    printf("-- poll\n");
    int gate[2];
    pid_t kid = child_until(gate, 3);
    int fd = pidfd_open(kid, 0);
    show_poll("while it runs", fd, 0);
    fd_set r;
    struct timeval tv = {0, 0};
    FD_ZERO(&r);
    FD_SET(fd, &r);
    printf("select while it runs: %d\n", select(fd + 1, &r, NULL, NULL, &tv));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 7}, got;
    CHECK("epoll_ctl ADD", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
    printf("epoll while it runs: %d\n", epoll_wait(ep, &got, 1, 0));
    write(gate[1], "x", 1);
    /* woken by the end, not by a timeout */
    int n = epoll_wait(ep, &got, 1, -1);
    printf("epoll after its end: %d events %s data %u\n", n, bits(got.events), got.data.u32);
    show_poll("a zombie", fd, -1);
    FD_ZERO(&r);
    FD_SET(fd, &r);
    printf("select a zombie: %d\n", select(fd + 1, &r, NULL, NULL, NULL));
    CHECK("pidfd_open of a zombie", close(pidfd_open(kid, 0)));
    int st;
    waitpid(kid, &st, 0);
    printf("reaped: exit %d\n", WEXITSTATUS(st));
    show_poll("reaped", fd, 0);
    n = epoll_wait(ep, &got, 1, 0);
    printf("epoll reaped: %d events %s\n", n, bits(got.events));

    /* a poller in another process, woken by the end of our child */
    pid_t waiter = child_until(gate, 0);
    int wfd = pidfd_open(waiter, 0);
    pid_t poller = fork();
    if (poller == 0) {
        struct pollfd p = {wfd, POLLIN, 0};
        int k = poll(&p, 1, -1);
        printf("poll in another process, woken: %d %s\n", k, bits(p.revents));
        fflush(stdout);
        _exit(0);
    }
    write(gate[1], "x", 1);
    waitpid(poller, NULL, 0);
    waitpid(waiter, NULL, 0);
    close(gate[1]);
    close(wfd);
    close(ep);
    close(fd);
}

static void show_info(const char *what, long r, siginfo_t *si, pid_t kid) {
    if (r < 0) {
        printf("%-48s %s\n", what, err(r));
        return;
    }
    printf("%-48s ok code %d status %d pid matches %d\n", what, si->si_code, si->si_status,
           si->si_pid == kid);
}

static void test_waitid(void) {
    printf("-- waitid(P_PIDFD)\n");
    siginfo_t si;
    int gate[2];
    pid_t kid = child_until(gate, 0);
    int fd = pidfd_open(kid, 0);
    memset(&si, 0xff, sizeof si);
    long r = waitid(P_PIDFD, fd, &si, WEXITED | WNOHANG);
    printf("WNOHANG while it runs: %s, si_pid %d\n", err(r), si.si_pid);
    int nb = pidfd_open(kid, PIDFD_NONBLOCK);
    memset(&si, 0xff, sizeof si);
    r = waitid(P_PIDFD, nb, &si, WEXITED);
    printf("non-blocking pidfd: %s, si_pid %d\n", err(r), si.si_pid);
    CHECK("non-blocking pidfd, WNOHANG", waitid(P_PIDFD, nb, &si, WEXITED | WNOHANG));

    CHECK("SIGSTOP by pidfd", send_signal(fd, SIGSTOP, NULL, 0));
    r = waitid(P_PIDFD, fd, &si, WSTOPPED);
    show_info("WSTOPPED", r, &si, kid);
    CHECK("SIGCONT by pidfd", send_signal(fd, SIGCONT, NULL, 0));
    r = waitid(P_PIDFD, fd, &si, WCONTINUED);
    show_info("WCONTINUED", r, &si, kid);
    CHECK("SIGKILL by pidfd", send_signal(fd, SIGKILL, NULL, 0));
    r = waitid(P_PIDFD, fd, &si, WEXITED | WNOWAIT);
    show_info("WEXITED|WNOWAIT", r, &si, kid);
    r = waitid(P_PIDFD, nb, &si, WEXITED);
    show_info("WEXITED on the non-blocking one", r, &si, kid);
    CHECK("again, reaped", waitid(P_PIDFD, fd, &si, WEXITED));
    CHECK("SIGKILL to the reaped", send_signal(fd, SIGKILL, NULL, 0));

    /* exactly that child, while another has ended first */
    int g1[2], g2[2];
    pid_t first = child_until(g1, 1), second = child_until(g2, 2);
    int fd2 = pidfd_open(second, 0);
    write(g1[1], "x", 1);
    write(g2[1], "x", 1);
    r = waitid(P_PIDFD, fd2, &si, WEXITED);
    show_info("the second child only", r, &si, second);
    int st;
    printf("the first still there: %d\n", waitpid(first, &st, 0) == first && WEXITSTATUS(st) == 1);

    int self = pidfd_open(getpid(), 0);
    CHECK("a pidfd of the caller: not a child", waitid(P_PIDFD, self, &si, WEXITED | WNOHANG));
    CHECK("not a pidfd", waitid(P_PIDFD, 0, &si, WEXITED | WNOHANG));
    CHECK("no such fd", waitid(P_PIDFD, 999, &si, WEXITED | WNOHANG));
    CHECK("fd -1", waitid(P_PIDFD, -1, &si, WEXITED | WNOHANG));
    CHECK("no options", waitid(P_PIDFD, self, &si, WNOHANG));
    for (int *p = (int[]){gate[1], g1[1], g2[1], fd, nb, fd2, self, -1}; *p >= 0; p++)
        close(*p);
}

/* The child's report of the signal it took: code, whether si_pid is its
 * parent's, si_value and whether si_uid is the parent's uid. */
static volatile sig_atomic_t took_code, took_pid_ok, took_value;

static void on_usr1(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    took_code = si->si_code;
    took_pid_ok = si->si_pid == getppid() && si->si_uid == getuid();
    took_value = si->si_value.sival_int;
}

/* A child that reports each SIGUSR1 on out (code, pid ok, value). */
static pid_t signal_reporter(int out[2]) {
    int ready[2];
    pipe(out);
    pipe(ready);
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO};
        sigset_t usr1, none;
        sigemptyset(&usr1);
        sigemptyset(&none);
        sigaddset(&usr1, SIGUSR1);
        sigprocmask(SIG_BLOCK, &usr1, NULL);     /* taken only in sigsuspend */
        sigaction(SIGUSR1, &sa, NULL);
        close(out[0]);
        write(ready[1], "r", 1);
        for (;;) {
            sigsuspend(&none);
            int rec[3] = {took_code, took_pid_ok, took_value};
            write(out[1], rec, sizeof rec);
        }
    }
    char c;
    read(ready[0], &c, 1);
    close(ready[0]);
    close(ready[1]);
    close(out[1]);
    return pid;
}

static void report(const char *what, long r, int out) {
    if (r < 0) {
        printf("%-48s %s\n", what, err(r));
        return;
    }
    int rec[3];
    read(out, rec, sizeof rec);
    printf("%-48s ok code %d sender matches %d value %d\n", what, rec[0], rec[1], rec[2]);
}

static void test_send_signal(void) {
    printf("-- pidfd_send_signal\n");
    int out[2];
    pid_t kid = signal_reporter(out);
    int fd = pidfd_open(kid, 0);
    report("SIGUSR1", send_signal(fd, SIGUSR1, NULL, 0), out[0]);
    report("SIGUSR1, PIDFD_SIGNAL_THREAD", send_signal(fd, SIGUSR1, NULL, 1), out[0]);
    report("SIGUSR1, PIDFD_SIGNAL_THREAD_GROUP", send_signal(fd, SIGUSR1, NULL, 2), out[0]);
    siginfo_t in;
    memset(&in, 0, sizeof in);
    in.si_signo = SIGUSR1;
    in.si_code = SI_QUEUE;
    in.si_pid = getpid();
    in.si_uid = getuid();
    in.si_value.sival_int = 42;
    report("SIGUSR1 with SI_QUEUE siginfo", send_signal(fd, SIGUSR1, &in, 0), out[0]);
    in.si_code = SI_USER;
    CHECK("forged SI_USER to another process", send_signal(fd, SIGUSR1, &in, 0));
    in.si_code = SI_KERNEL;
    CHECK("forged SI_KERNEL to another process", send_signal(fd, SIGUSR1, &in, 0));
    in.si_code = SI_TKILL;
    CHECK("forged SI_TKILL to another process", send_signal(fd, SIGUSR1, &in, 0));
    in.si_code = SI_QUEUE;
    CHECK("si_signo not sig", send_signal(fd, SIGUSR2, &in, 0));
    CHECK("flags 8", send_signal(fd, SIGUSR1, NULL, 8));
    CHECK("two scopes", send_signal(fd, SIGUSR1, NULL, 3));
    CHECK("signal 65", send_signal(fd, 65, NULL, 0));
    CHECK("signal -1", send_signal(fd, -1, NULL, 0));
    CHECK("PIDFD_SIGNAL_PROCESS_GROUP, not a leader", send_signal(fd, 0, NULL, 4));
    CHECK("signal 0", send_signal(fd, 0, NULL, 0));
    CHECK("not a pidfd", send_signal(0, 0, NULL, 0));
    CHECK("no such fd", send_signal(999, 0, NULL, 0));

    int self = pidfd_open(getpid(), 0);
    in.si_signo = 0;
    in.si_code = SI_USER;
    CHECK("SI_USER siginfo to itself, signal 0", send_signal(self, 0, &in, 0));
    in.si_signo = SIGUSR2;
    in.si_code = SI_KERNEL;
    signal(SIGUSR2, SIG_IGN);
    CHECK("SI_KERNEL siginfo to itself", send_signal(self, SIGUSR2, &in, 0));
    CHECK("SI_KERNEL to its group", send_signal(self, SIGUSR2, &in, 4));

    CHECK("SIGKILL", send_signal(fd, SIGKILL, NULL, 0));
    siginfo_t si;
    waitid(P_PIDFD, fd, &si, WEXITED | WNOWAIT);
    CHECK("SIGUSR1 to the zombie", send_signal(fd, SIGUSR1, NULL, 0));
    CHECK("signal 65 to the zombie", send_signal(fd, 65, NULL, 0));
    waitpid(kid, NULL, 0);
    CHECK("SIGUSR1 once reaped", send_signal(fd, SIGUSR1, NULL, 0));
    CHECK("signal 65 once reaped", send_signal(fd, 65, NULL, 0));
    close(out[0]);
    close(fd);

    /* a group leader's pidfd reaches its group: its child dies of SIGTERM,
     * which the leader ignores and reports */
    int ready[2];
    pipe(ready);
    pid_t leader = fork();
    if (leader == 0) {
        setpgid(0, 0);
        pid_t member = fork();
        if (member == 0) {
            pause();
            _exit(0);
        }
        signal(SIGTERM, SIG_IGN);
        write(ready[1], "r", 1);
        int mst;
        waitpid(member, &mst, 0);
        _exit(WIFSIGNALED(mst) ? WTERMSIG(mst) : 0);
    }
    char c;
    read(ready[0], &c, 1);
    close(ready[0]);
    close(ready[1]);
    int lfd = pidfd_open(leader, 0);
    CHECK("SIGTERM to a group by its leader's pidfd", send_signal(lfd, SIGTERM, NULL, 4));
    int st;
    waitpid(leader, &st, 0);
    printf("the member: signal %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    close(lfd);

    /* a user against root */
    int me = pidfd_open(getpid(), 0);
    pid_t user = fork();
    if (user == 0) {
        if (setresgid(USER, USER, USER) || setresuid(USER, USER, USER)) _exit(2);
        CHECK("as a user: SIGUSR1 to root", send_signal(me, SIGUSR1, NULL, 0));
        CHECK("as a user: signal 0 to root", send_signal(me, 0, NULL, 0));
        CHECK("as a user: pidfd_getfd of root's", getfd(me, 1, 0));
        int own = pidfd_open(getpid(), 0);
        struct stat s;
        fstat(own, &s);
        printf("as a user: its own pidfd's uid %d\n", s.st_uid);
        fflush(stdout);
        _exit(0);
    }
    waitpid(user, NULL, 0);
    close(me);
}

static void test_clone(void) {
    printf("-- CLONE_PIDFD\n");
    struct clone_args a;
    memset(&a, 0, sizeof a);
    int pfd = -1, ptid = 0;
    a.flags = CLONE_PIDFD | CLONE_PARENT_SETTID;
    a.pidfd = (uintptr_t)&pfd;
    a.parent_tid = (uintptr_t)&ptid;
    a.exit_signal = SIGCHLD;
    long r = syscall(SYS_clone3, &a, sizeof a);
    if (r == 0) _exit(5);
    printf("clone3: %s, pidfd set %d, parent_tid matches %d, close-on-exec %d\n", err(r),
           pfd >= 0, ptid == r, fcntl(pfd, F_GETFD) == FD_CLOEXEC);
    siginfo_t si;
    r = waitid(P_PIDFD, pfd, &si, WEXITED);
    show_info("waitid on clone3's pidfd", r, &si, (pid_t)ptid);
    close(pfd);

    a.flags = CLONE_PIDFD;
    a.pidfd = 8;
    r = syscall(SYS_clone3, &a, sizeof a);
    if (r == 0) _exit(0);
    const char *what = err(r);
    printf("clone3, pidfd at a bad address: %s, no child %d\n", what,
           waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);
    a.flags = CLONE_PIDFD | CLONE_PARENT_SETTID;
    a.pidfd = a.parent_tid = (uintptr_t)&pfd;
    CHECK("clone3, pidfd and parent_tid at one address", syscall(SYS_clone3, &a, sizeof a));

    pfd = -1;
    pid_t kid = (pid_t)syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, &pfd, 0, 0);
    if (kid == 0) _exit(6);
    printf("clone: %s, pidfd set %d\n", err(kid), pfd >= 0);
    r = waitid(P_PIDFD, pfd, &si, WEXITED);
    show_info("waitid on clone's pidfd", r, &si, kid);
    close(pfd);
    CHECK("clone, CLONE_PIDFD|CLONE_PARENT_SETTID",
          syscall(SYS_clone, CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, 0, &pfd, 0, 0));
    CHECK("clone, CLONE_PIDFD|CLONE_DETACHED",
          syscall(SYS_clone, CLONE_PIDFD | CLONE_DETACHED | SIGCHLD, 0, &pfd, 0, 0));
}

static void test_getfd(void) {
    printf("-- pidfd_getfd\n");
    int tell[2], gate[2];
    pipe(tell);
    pipe(gate);
    pid_t kid = fork();
    if (kid == 0) {
        int p[2];
        char c;
        pipe(p);
        write(p[1], "hello", 5);
        write(tell[1], &p[0], sizeof p[0]);
        read(gate[0], &c, 1);
        _exit(0);
    }
    int theirs;
    read(tell[0], &theirs, sizeof theirs);
    int fd = pidfd_open(kid, 0);
    int mine = getfd(fd, theirs, 0);
    char buf[8] = {0};
    printf("pidfd_getfd: %s, close-on-exec %d, read %zd \"%s\"\n", err(mine),
           fcntl(mine, F_GETFD) == FD_CLOEXEC, read(mine, buf, 5), buf);
    CHECK("flags 1", getfd(fd, theirs, 1));
    CHECK("no such fd there", getfd(fd, 999, 0));
    CHECK("fd -1 there", getfd(fd, -1, 0));
    CHECK("not a pidfd", getfd(mine, 0, 0));
    int self = pidfd_open(getpid(), 0);
    int again = getfd(self, mine, 0);
    CHECK("of the caller's own", again);
    write(gate[1], "x", 1);
    siginfo_t si;
    waitid(P_PIDFD, fd, &si, WEXITED | WNOWAIT);
    CHECK("of a zombie", getfd(fd, theirs, 0));
    waitpid(kid, NULL, 0);
    CHECK("once reaped", getfd(fd, theirs, 0));
    for (int *p = (int[]){tell[0], tell[1], gate[0], gate[1], fd, mine, self, again, -1};
         *p >= 0; p++)
        close(*p);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    if (access("/proc/self/fd", F_OK) && mount("proc", "/proc", "proc", 0, "")) {
        perror("mount proc");
        return 2;
    }
    test_open();
    test_thread();
    test_poll();
    test_waitid();
    test_send_signal();
    test_clone();
    test_getfd();
    printf("-- exit 0\n");
    fflush(stdout);
    _exit(0);   /* the paused thread of test_thread goes with the process */
}
