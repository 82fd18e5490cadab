/* Signal delivery as Linux defines it: printed the same natively and in a guest. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got, on_alt;
static volatile int info_code, info_pid_ok;
static char *altbase;
static sigjmp_buf env;
static volatile void *fault_addr;

static void on_usr1(int sig, siginfo_t *si, void *uc) {
    char here;
    got = sig;
    info_code = si->si_code;
    info_pid_ok = si->si_pid == getpid();
    on_alt = &here >= altbase && &here < altbase + SIGSTKSZ * 4;
    (void)uc;
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    fault_addr = si->si_addr;
    siglongjmp(env, 1);
}

static void on_alarm(int sig) { (void)sig; got = sig; }

static volatile int queued_value, queued_code;
static void on_rt(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    queued_value = si->si_value.sival_int;
    queued_code = si->si_code;
}

static double fpu_value(double x) {
    /* floating point state survives a handler that uses the FPU too */
    volatile double y = x * 3.0;
    raise(SIGUSR2);
    return y / 3.0;
}

static void on_usr2(int sig) { volatile double z = 1.0; for (int i = 0; i < 10; i++) z *= 7.5; (void)sig; (void)z; }

/* SIGALRM handled (with SA_RESTART or not) and sent to us in 0.2 s by a
   child, which then writes a byte to fd (if not -1) 0.2 s later */
static pid_t alarm_soon(int restart, int fd) {
    struct sigaction al = {.sa_handler = on_alarm, .sa_flags = restart ? SA_RESTART : 0};
    sigaction(SIGALRM, &al, NULL);
    pid_t w = fork();
    if (w == 0) {
        usleep(200000);
        kill(getppid(), SIGALRM);
        if (fd >= 0) {
            usleep(200000);
            write(fd, "x", 1);
        }
        _exit(0);
    }
    return w;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    /* SA_SIGINFO on an alternate stack */
    stack_t ss = {.ss_sp = altbase = malloc(SIGSTKSZ * 4), .ss_size = SIGSTKSZ * 4};
    if (sigaltstack(&ss, NULL)) perror("sigaltstack");
    struct sigaction sa = {.sa_sigaction = on_usr1, .sa_flags = SA_SIGINFO | SA_ONSTACK};
    sigaction(SIGUSR1, &sa, NULL);
    kill(getpid(), SIGUSR1);
    printf("usr1: got=%d code=%d pid_ok=%d on_alt=%d\n", got, info_code, info_pid_ok, on_alt);
    stack_t cur;
    sigaltstack(NULL, &cur);
    printf("altstack flags after=%d size_ok=%d\n", cur.ss_flags, cur.ss_size == SIGSTKSZ * 4);

    /* blocked, pending, then delivered when unblocked */
    sigset_t set, old, pend;
    sigemptyset(&set); sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    got = 0;
    raise(SIGUSR1);
    sigpending(&pend);
    printf("blocked: got=%d pending=%d\n", got, sigismember(&pend, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("unblocked: got=%d\n", got);

    /* FPU state across a handler */
    signal(SIGUSR2, on_usr2);
    printf("fpu: %.3f\n", fpu_value(2.5));

    /* SIGSEGV from a NULL dereference, caught, with si_addr */
    struct sigaction sv = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO};
    sigaction(SIGSEGV, &sv, NULL);
    if (sigsetjmp(env, 1) == 0) {
        *(volatile int *)16 = 1;
        printf("no fault?\n");
    } else {
        printf("segv at %p\n", (void *)fault_addr);
    }

    /* a child killed by SIGSEGV is reported as signalled */
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        *(volatile int *)8 = 1;
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("child: signalled=%d sig=%d\n", WIFSIGNALED(st), WTERMSIG(st));

    /* EINTR vs SA_RESTART on a blocking pipe read */
    for (int restart = 0; restart < 2; restart++) {
        int p[2];
        pipe(p);
        pid_t w = alarm_soon(restart, p[1]);
        char c;
        got = 0;
        ssize_t n = read(p[0], &c, 1);
        printf("read restart=%d: n=%zd errno=%s got=%d\n", restart, n, n < 0 ? strerror(errno) : "-", got);
        waitpid(w, NULL, 0);
        close(p[0]); close(p[1]);
    }

    /* a write into a full pipe cut short by a handled signal: the bytes that
       went in are counted, with or without SA_RESTART (never written twice) */
    for (int restart = 0; restart < 2; restart++) {
        int p[2];
        pipe(p);
        pid_t w = alarm_soon(restart, -1);
        static char big[200000];
        got = 0;
        ssize_t n = write(p[1], big, sizeof big);
        waitpid(w, NULL, 0);
        close(p[1]);
        long total = 0;
        char buf[4096];
        ssize_t r;
        while ((r = read(p[0], buf, sizeof buf)) > 0) total += r;
        printf("write restart=%d: n=%zd got=%d in pipe=%ld\n", restart, n, got, total);
        close(p[0]);
    }

    /* sigqueue: a value and SI_QUEUE reach the handler */
    struct sigaction rt = {.sa_sigaction = on_rt, .sa_flags = SA_SIGINFO};
    sigaction(SIGRTMIN + 1, &rt, NULL);
    sigqueue(getpid(), SIGRTMIN + 1, (union sigval){.sival_int = 4242});
    printf("sigqueue: value=%d code=%d\n", queued_value, queued_code);

    /* SIG_IGN'd SIGCHLD: children leave no zombie, wait gives ECHILD */
    signal(SIGCHLD, SIG_IGN);
    if (fork() == 0) _exit(3);
    usleep(100000);
    errno = 0;
    int r = wait(NULL);
    printf("ignored chld: wait=%d errno=%s\n", r, strerror(errno));

    /* A storm of handled signals (no SA_RESTART) while calls that never
       wait are made: none of them may fail with EINTR, however the signal
       lands (in a guest: also while the call waits to be served) */
    signal(SIGCHLD, SIG_DFL);
    struct sigaction storm = {.sa_handler = on_alarm};
    sigaction(SIGUSR2, &storm, NULL);
    pid_t sender = fork();
    if (sender == 0) {
        for (int i = 0; i < 3000; i++) {
            if (kill(getppid(), SIGUSR2)) _exit(1);
            if (i % 8 == 0) usleep(100);
        }
        _exit(0);
    }
    long failed = 0, calls = 0;
    int sent = 0;
    while (waitpid(sender, &sent, WNOHANG) == 0) {
        int fd = open("/", O_RDONLY);
        if (fd < 0 || close(fd)) failed++;
        if (getppid() < 0) failed++;
        calls += 3;
    }
    printf("signal storm: calls failed=%ld (of more than 0: %d), sender status %d\n",
           failed, calls > 0, sent);

    /* A zombie is there to kill until it is reaped (the kill does nothing). */
    pid_t zombie = fork();
    if (zombie == 0) _exit(5);
    siginfo_t zi;
    waitid(P_PID, zombie, &zi, WEXITED | WNOWAIT);
    int r0 = kill(zombie, 0), rterm = kill(zombie, SIGTERM);
    int zst = 0;
    waitpid(zombie, &zst, 0);
    errno = 0;
    int after = kill(zombie, 0);
    printf("kill of a zombie: %d %d, its status %d; once reaped: %d %s\n", r0, rterm,
           WEXITSTATUS(zst), after, errno == ESRCH ? "ESRCH" : strerror(errno));
    return 0;
}
