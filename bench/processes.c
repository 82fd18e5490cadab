/* The same process loops natively and in a guest, each iteration timed
   alone: fork+_exit+waitpid, fork+execve(/bin/true)+waitpid, and a one-byte
   pipe ping-pong round trip between two processes.  Prints the median and
   the mean.  Usage: processes N */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 200;
    double *us = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        double t = now();
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        waitpid(pid, NULL, 0);
        us[i] = now() - t;
    }
    report("fork_exit_wait", us, n);
    for (int i = 0; i < n; i++) {
        double t = now();
        pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "exec failed\n"); return 1; }
        us[i] = now() - t;
    }
    report("fork_exec_wait", us, n);
    int ab[2], ba[2];
    pipe(ab);
    pipe(ba);
    pid_t echo = fork();
    if (echo == 0) {
        char c;
        close(ab[1]);
        close(ba[0]);
        while (read(ab[0], &c, 1) == 1) write(ba[1], &c, 1);
        _exit(0);
    }
    int rounds = n * 10;
    double *rt = malloc(sizeof(double) * rounds);
    for (int i = 0; i < rounds; i++) {
        char c = 'x';
        double t = now();
        write(ab[1], &c, 1);
        read(ba[0], &c, 1);
        rt[i] = now() - t;
    }
    close(ab[1]);
    close(ab[0]);
    close(ba[1]);
    waitpid(echo, NULL, 0);
    report("pipe_pingpong", rt, rounds);
    return 0;
}
