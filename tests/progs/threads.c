/* 4 threads, a mutex and a condition variable, joined: the same natively and in a guest. */
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define THREADS 4
#define ROUNDS 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_changed = PTHREAD_COND_INITIALIZER;
static long counter;
static int turn;
static int order[THREADS * 3], n_order;
static pid_t tids[THREADS];

static void *worker(void *arg) {
    int me = (int)(long)arg;
    tids[me] = (pid_t)syscall(SYS_gettid);
    for (int i = 0; i < ROUNDS; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    for (int r = 0; r < 3; r++) {          /* take turns in a fixed order */
        pthread_mutex_lock(&lock);
        while (turn % THREADS != me)
            pthread_cond_wait(&turn_changed, &lock);
        order[n_order++] = me;
        turn++;
        pthread_cond_broadcast(&turn_changed);
        pthread_mutex_unlock(&lock);
    }
    return (void *)(long)(me * 10);
}

int main(void) {
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, worker, (void *)i);
    long sum = 0;
    for (int i = 0; i < THREADS; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        sum += (long)ret;
    }
    printf("counter=%ld sum=%ld order=", counter, sum);
    for (int i = 0; i < n_order; i++) printf("%d", order[i]);
    int distinct = 1;
    for (int i = 0; i < THREADS; i++)
        for (int j = 0; j < i; j++)
            if (tids[i] == tids[j] || tids[i] == getpid()) distinct = 0;
    printf(" tids_distinct=%d same_pid=%d\n", distinct, getpid() == (pid_t)syscall(SYS_getpid));
    return 0;
}
