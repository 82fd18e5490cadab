/* fork+execve(PROG ARGS...)+waitpid, each timed alone, for programs of a
   distribution (dynamic ones: the interpreter, libc and ld.so.cache are
   part of the cost).  Prints "NAME median_us M mean_us A" for run.py.
   Usage: spawn NAME N PROG [ARGS...] */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timing.h"

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: spawn NAME N PROG [ARGS...]\n"); return 2; }
    int n = atoi(argv[2]);
    double *us = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        double t = now();
        pid_t pid = fork();
        if (pid == 0) {
            execv(argv[3], argv + 3);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st)) { fprintf(stderr, "%s failed\n", argv[3]); return 1; }
        us[i] = now() - t;
    }
    report(argv[1], us, n);
    return 0;
}
