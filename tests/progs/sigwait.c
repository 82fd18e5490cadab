/* sigtimedwait, sigwaitinfo and sigwait as Linux answers them: signals
   taken from the set without handlers, with their siginfo; EAGAIN at the
   timeout; EINTR when another signal's handler runs; a waiting thread
   taking a process-directed signal every thread blocks; blocked signals
   whose action is to do nothing kept pending, and flushed when set to
   SIG_IGN.  Prints results and errno names only. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig) { (void)sig; alarmed = 1; }

static const char *name(int r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

static void *waiter(void *arg) {
    sigset_t *set = arg;
    int sig = 0;
    int r = sigwait(set, &sig);
    printf("thread's sigwait: %d, took %s\n", r, sig == SIGUSR2 ? "SIGUSR2" : "other");
    return NULL;
}

int main(void) {
    sigset_t set, one, pend;
    siginfo_t si;
    struct timespec zero = {0, 0}, brief = {0, 20 * 1000 * 1000}, bad = {0, 1000000000};
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGWINCH);
    sigprocmask(SIG_BLOCK, &set, NULL);

    raise(SIGUSR1);
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    int r = sigtimedwait(&one, &si, &zero);
    printf("raised: %d, code tkill %d, pid mine %d\n", r, si.si_code == SI_TKILL, si.si_pid == getpid());
    errno = 0;
    r = sigtimedwait(&one, &si, &zero);
    printf("nothing pending, zero timeout: %d %s\n", r, name(r));
    r = sigtimedwait(&one, &si, &brief);
    printf("nothing pending, 20 ms: %d %s\n", r, name(r));
    r = sigtimedwait(&one, &si, &bad);
    printf("bad timespec: %d %s\n", r, name(r));
    r = syscall(SYS_rt_sigtimedwait, &one, &si, &zero, 4);
    printf("bad sigsetsize: %d %s\n", r, name(r));

    pid_t kid = fork();
    if (kid == 0) _exit(9);
    sigemptyset(&one);
    sigaddset(&one, SIGCHLD);
    r = sigwaitinfo(&one, &si);
    printf("SIGCHLD (default: ignored) taken: %d exited %d status %d pid %d\n", r == SIGCHLD,
           si.si_code == CLD_EXITED, si.si_status, si.si_pid == kid);
    waitpid(kid, NULL, 0);

    kid = fork();
    if (kid == 0) {
        kill(getppid(), SIGUSR2);
        _exit(0);
    }
    sigemptyset(&one);
    sigaddset(&one, SIGUSR2);
    r = sigwaitinfo(&one, &si);
    printf("from a child: %d user %d pid %d\n", r == SIGUSR2, si.si_code == SI_USER, si.si_pid == kid);
    waitpid(kid, NULL, 0);
    /* its SIGCHLD is pending, blocked: kept although its action is to do nothing */
    sigpending(&pend);
    printf("blocked SIGCHLD kept pending: %d\n", sigismember(&pend, SIGCHLD));
    raise(SIGWINCH);
    sigpending(&pend);
    printf("blocked SIGWINCH kept pending: %d\n", sigismember(&pend, SIGWINCH));
    signal(SIGWINCH, SIG_IGN);
    sigpending(&pend);
    printf("after SIG_IGN: %d\n", sigismember(&pend, SIGWINCH));
    raise(SIGUSR1);
    signal(SIGUSR1, SIG_IGN);
    sigpending(&pend);
    printf("SIGUSR1 after SIG_IGN: %d\n", sigismember(&pend, SIGUSR1));
    signal(SIGUSR1, SIG_DFL);

    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 0}, {0, 30 * 1000}};
    setitimer(ITIMER_REAL, &it, NULL);
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    errno = 0;
    r = sigwaitinfo(&one, &si);
    printf("another signal's handler: %d %s alarmed %d\n", r, name(r), alarmed);

    pthread_t th;
    sigemptyset(&one);
    sigaddset(&one, SIGUSR2);
    pthread_create(&th, NULL, waiter, &one);
    usleep(50 * 1000);          /* let it wait (either way it takes the signal) */
    kill(getpid(), SIGUSR2);
    pthread_join(th, NULL);
    return 0;
}
