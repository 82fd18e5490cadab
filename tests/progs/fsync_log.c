/* Appends N numbered fixed-size records to a file, fsync()ing after each,
   and prints "fsynced I" only after record I's fsync returned 0; any error
   is printed ("error: ...") and ends the program with status 1.
   Usage: fsync_log FILE N

   Record I is RECORD bytes: "record %08d\n" then the byte 'a' + I % 26 up
   to a closing newline, at offset I * RECORD. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RECORD 512

static int fail(const char *what, int n) {
    printf("error: %s at record %d: %s\n", what, n, strerror(errno));
    fflush(stdout);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: fsync_log FILE N\n");
        return 2;
    }
    int n = atoi(argv[2]);
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    if (fd < 0) return fail("open", -1);
    if (fsync(fd) != 0) return fail("fsync", -1);
    char rec[RECORD];
    for (int i = 0; i < n; i++) {
        int head = snprintf(rec, sizeof rec, "record %08d\n", i);
        memset(rec + head, 'a' + i % 26, RECORD - head - 1);
        rec[RECORD - 1] = '\n';
        ssize_t w = write(fd, rec, RECORD);
        if (w != RECORD) {
            if (w >= 0) errno = EIO;     /* a short write */
            return fail("write", i);
        }
        if (fsync(fd) != 0) return fail("fsync", i);
        printf("fsynced %d\n", i);
        fflush(stdout);
    }
    if (close(fd) != 0) return fail("close", n);
    printf("done %d\n", n);
    fflush(stdout);
    return 0;
}
