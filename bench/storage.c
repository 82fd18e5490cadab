/* Storage, the same natively and in a guest, in directory DIR:
     write_fsync_first  MB/s writing MiB MiB in 64 KiB chunks, then fsync (the
                    time includes the fsync), in a process just started
     write_fsync    the same, the median of the ROUNDS-1 rounds after it (each
                    unlinks the last round's file first)
     read_64k       MB/s reading the file back, cached, in 64 KiB chunks
     read_1m        the same in 1 MiB chunks
     open_read_close  µs per open + read of 4 KiB + close (median, mean)
     stat           µs per stat (median, mean)
     tar_create     seconds for busybox tar to archive FILES small files
     tar_extract    seconds for busybox tar to extract that archive
   Throughput lines are "NAME MBps X", times "NAME seconds X", per-call ones
   "NAME median_us M mean_us A" (timing.h).  DIR is made if missing and
   must not hold an earlier run's files.  Usage: storage DIR [MiB [N [FILES]]] */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "timing.h"

#define CHUNK (64 << 10)
#define BIG (1 << 20)
#define ROUNDS 4

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void mbps(const char *name, long long bytes, double us) {
    printf("%s MBps %.1f\n", name, bytes / us);      /* bytes per µs = MB/s */
}

/* Reads the whole file in chunks of size; the bytes read. */
static long long read_all(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die("open for reading");
    long long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, size)) > 0)
        total += n;
    if (n < 0) die("read");
    close(fd);
    return total;
}

/* Runs argv (a busybox applet by path); seconds it took; exits on failure. */
static double timed_run(char *const argv[]) {
    double t = now();
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
        fprintf(stderr, "%s failed\n", argv[0]);
        exit(1);
    }
    return (now() - t) / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: storage DIR [MiB [N [FILES]]]\n");
        return 2;
    }
    const char *dir = argv[1];
    long long mib = argc > 2 ? atoll(argv[2]) : 64;
    int n = argc > 3 ? atoi(argv[3]) : 2000;
    int files = argc > 4 ? atoi(argv[4]) : 2000;
    char path[4096], small[4096], tree[4096], tarball[4096], out[4096];
    snprintf(path, sizeof path, "%s/storage.dat", dir);
    snprintf(small, sizeof small, "%s/small.dat", dir);
    snprintf(tree, sizeof tree, "%s/files", dir);
    snprintf(tarball, sizeof tarball, "%s/files.tar", dir);
    snprintf(out, sizeof out, "%s/extracted", dir);
    if (mkdir(dir, 0755) && errno != EEXIST) die("mkdir DIR");
    char *buf = malloc(BIG);
    for (int i = 0; i < BIG; i++)
        buf[i] = (char)(i * 7 + i / 4096);

    /* Sequential write, then fsync: the first round apart, as it is the one
       that finds memory (the page cache's, the process's) not yet used. */
    long long bytes = mib << 20;
    double t, us_write[ROUNDS];
    int fd;
    for (int r = 0; r < ROUNDS; r++) {
        if (r && unlink(path)) die("unlink");
        t = now();
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) die("open for writing");
        for (long long done = 0; done < bytes; done += CHUNK)
            if (write(fd, buf + (done / CHUNK % 16) * CHUNK, CHUNK) != CHUNK) die("write");
        if (fsync(fd)) die("fsync");
        us_write[r] = now() - t;
        close(fd);
    }
    mbps("write_fsync_first", bytes, us_write[0]);
    qsort(us_write + 1, ROUNDS - 1, sizeof(double), cmp);
    mbps("write_fsync", bytes, us_write[1 + (ROUNDS - 1) / 2]);

    /* Cached reads: one pass to warm the caches, then one timed pass each. */
    if (read_all(path, buf, CHUNK) != bytes) die("short file");
    t = now();
    read_all(path, buf, CHUNK);
    mbps("read_64k", bytes, now() - t);
    t = now();
    read_all(path, buf, BIG);
    mbps("read_1m", bytes, now() - t);

    /* open + read 4 KiB + close, and stat, each call timed alone. */
    fd = open(small, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, buf, 4096) != 4096) die("small file");
    close(fd);
    double *us = malloc(sizeof(double) * n);
    for (int i = 0; i < n; i++) {
        t = now();
        fd = open(small, O_RDONLY);
        if (fd < 0 || read(fd, buf, 4096) != 4096) die("open+read");
        close(fd);
        us[i] = now() - t;
    }
    report("open_read_close", us, n);
    for (int i = 0; i < n; i++) {
        struct stat st;
        t = now();
        if (stat(small, &st)) die("stat");
        us[i] = now() - t;
    }
    report("stat", us, n);

    /* A tree of small files (1 KiB each, 100 to a directory), archived with
       busybox tar and extracted elsewhere. */
    if (mkdir(tree, 0755) || mkdir(out, 0755)) die("mkdir");
    for (int i = 0; i < files; i++) {
        char name[4200];
        if (i % 100 == 0) {
            snprintf(name, sizeof name, "%s/d%02d", tree, i / 100);
            if (mkdir(name, 0755)) die("mkdir");
        }
        snprintf(name, sizeof name, "%s/d%02d/f%04d", tree, i / 100, i);
        fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || write(fd, buf + i, 1024) != 1024) die("small files");
        close(fd);
    }
    char *create[] = {"/bin/tar", "-cf", tarball, "-C", (char *)dir, "files", NULL};
    printf("tar_create seconds %.3f\n", timed_run(create));
    char *extract[] = {"/bin/tar", "-xf", tarball, "-C", out, NULL};
    printf("tar_extract seconds %.3f\n", timed_run(extract));
    return 0;
}
