/* The same loops natively and in a guest: µs per getppid(), and per
   open+read+close of a small file, each call timed alone; prints the median
   and the mean.  Usage: syscalls N FILE */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "timing.h"

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 10000;
    const char *path = argc > 2 ? argv[2] : "/etc/hostname";
    char buf[4096];
    double *us = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        double t = now();
        getppid();
        us[i] = now() - t;
    }
    report("getppid", us, n);
    for (int i = 0; i < n; i++) {
        double t = now();
        int fd = open(path, O_RDONLY);
        if (fd < 0) { perror(path); return 1; }
        if (read(fd, buf, sizeof buf) < 0) { perror("read"); return 1; }
        close(fd);
        us[i] = now() - t;
    }
    report("open_read_close", us, n);
    return 0;
}
