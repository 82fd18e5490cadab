/* execve from a thread that is not the leader: the other threads end, the
   new image runs under the process's pid.  (The guest keeps the thread's
   own tid for it, where Linux gives it the pid: not printed.)
   dethread leader: execve from the leader while other threads spin in user
   code, wait in a trapped call (pause) and in a notified one (a pipe read). */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
static char pidbuf[32];
static void *run(void *a) {
    (void)a;
    printf("thread: tid!=pid %d\n", (int)syscall(SYS_gettid) != getpid());
    fflush(stdout);
    execl("/bin/dethread", "dethread", pidbuf, (char *)NULL);
    perror("execl");
    return NULL;
}
static void *spin(void *a) { (void)a; for (;;) pause(); return NULL; }
static void *busy(void *a) { for (;;) ++*(volatile long *)a; return NULL; }
static void *reader(void *a) { char c; read(*(int *)a, &c, 1); return NULL; }
int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "leader")) {
        static long counter;
        static int fds[2];
        pthread_t t[3];
        pipe(fds);
        snprintf(pidbuf, sizeof pidbuf, "%d", getpid());
        pthread_create(&t[0], NULL, spin, NULL);
        pthread_create(&t[1], NULL, busy, &counter);
        pthread_create(&t[2], NULL, reader, &fds[0]);
        while (!*(volatile long *)&counter)
            sched_yield();
        printf("leader: execs\n");
        fflush(stdout);
        execl("/bin/dethread", "dethread", pidbuf, (char *)NULL);
        perror("execl");
        return 1;
    }
    if (argc > 1) {
        printf("after exec: same pid %d\n", atoi(argv[1]) == getpid());
        return 0;
    }
    snprintf(pidbuf, sizeof pidbuf, "%d", getpid());
    pthread_t a, b;
    pthread_create(&b, NULL, spin, NULL);
    pthread_create(&a, NULL, run, NULL);
    for (;;) pause();
}
