/* The alternate signal stack, natively and in a guest: what sigaltstack
 * reports in a fresh process, after setting one, in a fork, a vfork and a
 * clone(CLONE_VM) child, a new thread, a handler running on it, and after
 * exec (Linux: disabled, ss_sp and ss_size 0, SS_AUTODISARM kept).
 * `altstack show NAME`: what an exec'ed copy starts with. */
#define _GNU_SOURCE
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIZE (64 << 10)
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31)       /* linux/signal.h; glibc does not define it */
#endif

static char *buf;                       /* the alternate stack this sets */

static void describe(const char *who, stack_t ss) {
    const char *sp = ss.ss_sp == NULL ? "0" : (char *)ss.ss_sp == buf ? "buf" : "other";
    printf("%-24s sp=%s size=%zu flags=%#x\n", who, sp, ss.ss_size, (unsigned)ss.ss_flags);
}

static stack_t query(void) {
    stack_t ss;
    memset(&ss, 0xa5, sizeof ss);
    if (sigaltstack(NULL, &ss)) { perror("sigaltstack"); exit(2); }
    return ss;
}

static void show(const char *who) {
    describe(who, query());
}

static int set(void *sp, size_t size, int flags) {
    stack_t ss = {.ss_sp = sp, .ss_size = size, .ss_flags = flags};
    return sigaltstack(&ss, NULL);
}

static void exec_show(const char *who) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/altstack", "altstack", "show", who, (char *)NULL);
        perror("exec");
        _exit(2);
    }
    waitpid(pid, NULL, 0);
}

static stack_t seen;                    /* what a child or a handler saw */

static void on_usr1(int sig) {
    (void)sig;
    seen = query();
}

static int clone_child(void *arg) {
    (void)arg;
    seen = query();
    return 0;
}

static void *thread(void *arg) {
    (void)arg;
    show("new thread");
    set(malloc(SIZE), SIZE, 0);
    show("new thread, its own");
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 2 && !strcmp(argv[1], "show")) {
        show(argv[2]);
        return 0;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    buf = malloc(SIZE);
    show("fresh");

    set(buf, SIZE, 0);
    show("set");
    pid_t pid = fork();
    if (pid == 0) {
        show("fork child");
        _exit(0);
    }
    waitpid(pid, NULL, 0);

    memset(&seen, 0, sizeof seen);
    if (vfork() == 0) {
        seen = query();
        _exit(0);
    }
    describe("vfork child", seen);

    memset(&seen, 0, sizeof seen);
    char *stack = malloc(SIZE);
    pid = clone(clone_child, stack + SIZE, CLONE_VM | SIGCHLD, NULL);
    waitpid(pid, NULL, 0);
    describe("clone(CLONE_VM) child", seen);

    pthread_t th;
    pthread_create(&th, NULL, thread, NULL);
    pthread_join(th, NULL);
    show("main after the thread");

    struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = SA_ONSTACK};
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    describe("in a handler on it", seen);
    show("after the handler");

    exec_show("after exec");

    set(buf, SIZE, SS_ONSTACK);
    show("set SS_ONSTACK");
    set(buf, SIZE, SS_AUTODISARM);
    show("set SS_AUTODISARM");
    raise(SIGUSR1);
    describe("in a handler, autodisarm", seen);
    show("after that handler");
    exec_show("after exec, autodisarm");

    set(NULL, 0, SS_DISABLE);
    show("disabled");
    exec_show("after exec, disabled");
    set(NULL, 0, SS_DISABLE | SS_AUTODISARM);
    show("disabled, autodisarm");
    printf("-- exit 0\n");
    return 0;
}
