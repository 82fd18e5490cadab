/* A fork bomb that ends: every process forks until a fork fails or another
 * process's has; the failure's errno is counted; all the processes wait
 * for each other (so they are all alive at once: the peak), then each reaps
 * its children and exits.
 *   sec_forkbomb ROUNDS [NPROC]   ROUNDS bombs, under RLIMIT_NPROC NPROC if given
 * Prints per round: the errno of the failed forks, other errors, and how
 * many processes the bomb had at its peak. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct shared {
    int processes;   /* of the bomb, and forks on the way */
    int arrived;     /* processes done forking */
    int released;    /* all arrived: a futex word */
    int stop;
    int eagain, other, peak;
};

static void bomb(struct shared *sh) {
    while (!__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST)) {
        __atomic_add_fetch(&sh->processes, 1, __ATOMIC_SEQ_CST);
        pid_t pid = fork();
        if (pid == 0)
            continue;             /* the child bombs on */
        if (pid < 0) {
            __atomic_sub_fetch(&sh->processes, 1, __ATOMIC_SEQ_CST);
            __atomic_add_fetch(errno == EAGAIN ? &sh->eagain : &sh->other, 1, __ATOMIC_SEQ_CST);
            __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
        }
    }
    int n = __atomic_add_fetch(&sh->arrived, 1, __ATOMIC_SEQ_CST);
    if (n == __atomic_load_n(&sh->processes, __ATOMIC_SEQ_CST)) {
        sh->peak = n;
        __atomic_store_n(&sh->released, 1, __ATOMIC_SEQ_CST);
        syscall(SYS_futex, &sh->released, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    }
    while (!__atomic_load_n(&sh->released, __ATOMIC_SEQ_CST))
        syscall(SYS_futex, &sh->released, FUTEX_WAIT, 0, NULL, NULL, 0);
    while (wait(NULL) > 0)
        ;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2) {
        struct rlimit rl = {atol(argv[2]), atol(argv[2])};
        if (setrlimit(RLIMIT_NPROC, &rl)) { perror("setrlimit"); return 2; }
    }
    struct shared *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                             -1, 0);
    pid_t me = getpid();
    for (int r = 1; r <= rounds; r++) {
        memset(sh, 0, sizeof *sh);
        sh->processes = 1;
        fflush(stdout);
        bomb(sh);
        if (getpid() != me)
            _exit(0);
        printf("round %d: forks failed with %s, %d other errors, %d processes at the peak\n",
               r, sh->eagain ? "EAGAIN" : "nothing", sh->other, sh->peak);
        fflush(stdout);
    }
    return 0;
}
