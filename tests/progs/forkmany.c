/* 200 children forked at once, all reaped; each exit status checked.
   With "seq": one child at a time, each exiting at once while its parent
   heads into waitpid (the exit and the wait race in the kernel). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
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
