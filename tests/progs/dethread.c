/* execve from a thread that is not the leader: the other threads end, the
   new image runs under the process's pid.  (The guest keeps the thread's
   own tid for it, where Linux gives it the pid: not printed.) */
#include <pthread.h>
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
int main(int argc, char **argv) {
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
