/* 200 children forked at once, all reaped; each exit status checked.
   With "seq": one child at a time, each exiting at once while its parent
   heads into waitpid (the exit and the wait race in the kernel).  With
   "redzone": forks from unusual places (a thread, a handler on the
   alternate stack, a raw fork(2) with live words in the red zone). */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* fork(2) made by hand with words in the red zone (the 128 bytes below rsp
   that a leaf function may use without moving rsp): both processes must
   find them as they were, the parent with the child's pid in rax. */
__attribute__((noinline)) static long raw_fork(long *near, long *far) {
    long ret;
    __asm__ volatile(
        "movabsq $0x1111111111, %%r8\n\tmovq %%r8, -8(%%rsp)\n\t"
        "movabsq $0x2222222222, %%r8\n\tmovq %%r8, -128(%%rsp)\n\t"
        "movl $57, %%eax\n\tsyscall\n\t"
        "movq -8(%%rsp), %%r8\n\tmovq %%r8, (%1)\n\t"
        "movq -128(%%rsp), %%r8\n\tmovq %%r8, (%2)\n\t"
        : "=a"(ret) : "r"(near), "r"(far) : "rcx", "r11", "r8", "memory");
    return ret;
}

/* fork from a thread, and from a handler running on the alternate stack */
static void *fork_in_thread(void *arg) {
    (void)arg;
    int st;
    pid_t p = fork();
    if (p == 0) _exit(7);
    waitpid(p, &st, 0);
    printf("fork in a thread: child status %d\n", WEXITSTATUS(st));
    return NULL;
}

static volatile int handler_child;
static void fork_in_handler(int sig) {
    (void)sig;
    int st;
    pid_t p = fork();
    if (p == 0) _exit(9);
    waitpid(p, &st, 0);
    handler_child = WEXITSTATUS(st);
}

static int red_zone(void) {
    pthread_t th;
    pthread_create(&th, NULL, fork_in_thread, NULL);
    pthread_join(th, NULL);
    stack_t ss = {.ss_sp = malloc(65536), .ss_size = 65536};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {.sa_handler = fork_in_handler, .sa_flags = SA_ONSTACK};
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("fork in a handler on the alternate stack: child status %d\n", handler_child);
    long near = 0, far = 0;
    long pid = raw_fork(&near, &far);
    int kept = near == 0x1111111111 && far == 0x2222222222;
    if (pid == 0) _exit(kept ? 42 : 1);
    int st;
    long waited = waitpid(pid, &st, 0);
    printf("red zone kept: parent %d child %d, rax is the child's pid %d\n", kept,
           WEXITSTATUS(st) == 42, waited == pid);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "redzone")) return red_zone();
    int n = argc > 1 ? atoi(argv[1]) : 200;
    if (argc > 2) {
        long sum = 0;
        for (int i = 0; i < n; i++) {
            int st;
            pid_t pid = fork();
            if (pid == 0) _exit(i % 256);
            if (pid < 0 || waitpid(pid, &st, 0) != pid) { perror("fork/wait"); return 1; }
            sum += WEXITSTATUS(st);
        }
        printf("one at a time: %d sum=%ld\n", n, sum);
        return 0;
    }
    int go[2];
    pipe(go);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("fork"); return 1; }
        if (pid == 0) {               /* all alive at once: wait for the go */
            char c;
            close(go[1]);
            read(go[0], &c, 1);
            _exit(i % 256);
        }
    }
    close(go[1]);                     /* EOF: all children run to their exit */
    long sum = 0;
    int reaped = 0, st;
    pid_t pid;
    while ((pid = wait(&st)) > 0) {
        reaped++;
        sum += WEXITSTATUS(st);
    }
    printf("reaped=%d sum=%ld\n", reaped, sum);
    return 0;
}
