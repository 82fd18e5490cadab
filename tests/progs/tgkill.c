/* Thread-directed signals, natively and in a guest: tgkill and tkill put a
 * signal on the thread they name, and that thread alone takes it, even
 * while it blocks the signal and another thread does not: it stays pending
 * for that thread (its sigpending shows it, the other's does not) whether
 * its action is a handler, the default "terminate" or the default "stop",
 * and the handler runs in that thread once it unblocks.  A signal sent to
 * the process goes to a thread that does not block it.  Runs in a child
 * (a guest's init would ignore the default actions). */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t main_tid, worker_tid;
static volatile pid_t handled_by;
static volatile int handled_sig;
static pthread_barrier_t step;

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static const char *who(pid_t tid) {
    return tid == 0 ? "nobody" : tid == main_tid ? "main" : tid == worker_tid ? "worker" : "?";
}

static void handler(int sig) {
    handled_by = gettid_();
    handled_sig = sig;
}

static void on(int sig, void (*h)(int)) {
    struct sigaction sa = {.sa_handler = h};
    sigaction(sig, &sa, NULL);
}

static void mask(int how, int sig) {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    pthread_sigmask(how, &s, NULL);
}

static void pause_ms(int ms) {           /* time for a wrongly routed signal to land */
    struct timespec ts = {0, ms * 1000000L};
    while (nanosleep(&ts, &ts)) {}
}

static const char *name(int sig) {
    switch (sig) {
    case SIGUSR1: return "USR1";
    case SIGUSR2: return "USR2";
    case SIGTSTP: return "TSTP";
    case SIGTERM: return "TERM";
    default: return "?";
    }
}

static void pending(const char *me, int sig) {
    sigset_t s;
    sigpending(&s);
    printf("  %s: %s pending: %s\n", me, name(sig), sigismember(&s, sig) ? "yes" : "no");
}

static void handled(const char *what) {
    printf("  %s: handled by %s%s\n", what, who(handled_by),
           handled_by && !handled_sig ? " (no signal?)" : "");
    handled_by = 0;
    handled_sig = 0;
}

enum how { TGKILL, TKILL };

static void send(enum how how, pid_t tid, int sig) {
    long r = how == TGKILL ? syscall(SYS_tgkill, getpid(), tid, sig) : syscall(SYS_tkill, tid, sig);
    if (r) perror("tgkill");
}

/* Each case: one thread sends sig to the other, which blocks it while the
 * sender does not; each step runs in one thread while the other waits at
 * the barrier. */
struct plan { const char *name; enum how how; int sig; int target_is_worker; int dfl; };

static const struct plan plans[] = {
    {"tgkill USR1 (handler) to the worker, which blocks it", TGKILL, SIGUSR1, 1, 0},
    {"tkill USR2 (default: terminate) to the worker, which blocks it", TKILL, SIGUSR2, 1, 1},
    {"tgkill TSTP (default: stop) to the worker, which blocks it", TGKILL, SIGTSTP, 1, 1},
    {"tgkill USR1 (handler) to main, which blocks it", TGKILL, SIGUSR1, 0, 0},
    {"tkill TERM (default: terminate) to main, which blocks it", TKILL, SIGTERM, 0, 1},
};
#define NPLANS (int)(sizeof plans / sizeof plans[0])

/* Both threads run this; `worker` says which one we are. */
static void run(int worker) {
    const char *me = worker ? "worker" : "main";
    for (int i = 0; i < NPLANS; i++) {
        const struct plan *p = &plans[i];
        int target = p->target_is_worker == worker;
        if (target) {
            mask(SIG_BLOCK, p->sig);
            on(p->sig, p->dfl ? SIG_DFL : handler);
        }
        pthread_barrier_wait(&step);
        if (!target) {                      /* the sender */
            printf("%s\n", p->name);
            send(p->how, p->target_is_worker ? worker_tid : main_tid, p->sig);
            pause_ms(50);
            handled("while blocked");
            pending(me, p->sig);
        }
        pthread_barrier_wait(&step);
        if (target) {
            pending(me, p->sig);
            on(p->sig, handler);            /* a default action would end or stop us */
            mask(SIG_UNBLOCK, p->sig);
            handled("once unblocked");
        }
        pthread_barrier_wait(&step);
    }
    /* to the process: a thread that does not block it takes it */
    if (!worker) mask(SIG_BLOCK, SIGUSR1);
    pthread_barrier_wait(&step);
    if (!worker) {
        printf("kill USR1 to the process, main blocks it\n");
        kill(getpid(), SIGUSR1);
        pause_ms(50);
        handled("after 50 ms");
        pending(me, SIGUSR1);
        mask(SIG_UNBLOCK, SIGUSR1);
    }
    pthread_barrier_wait(&step);
}

static void *worker(void *arg) {
    (void)arg;
    worker_tid = gettid_();
    pthread_barrier_wait(&step);
    run(1);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    pid_t pid = fork();
    if (pid == 0) {
        pthread_t th;
        main_tid = gettid_();
        pthread_barrier_init(&step, NULL, 2);
        pthread_create(&th, NULL, worker, NULL);
        pthread_barrier_wait(&step);
        run(0);
        pthread_join(th, NULL);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("child killed by %s\n", strsignal(WTERMSIG(status)));
    else
        printf("child exit %d\n", WEXITSTATUS(status));
    printf("-- exit 0\n");
    return 0;
}
