/* The fault matrix's workload: fsync + rename churn amid console output.
   Usage: churn DIR FILES LINES

   FILES files: file I goes to DIR/tmp, is fsync'd, renamed to DIR/f%05d,
   the directory fsync'd, and only then is "fsynced I" printed; before
   each, LINES numbered console lines ("line %06d" and padding, one write
   each), so that the console is busy whenever the disk is.  File I's
   bytes are churn_byte(I, K) for K below churn_size(I) (tests/reliability
   computes the same).  Any error is printed ("error: ...") and ends the
   program with status 1; at the end "done FILES". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t churn_size(int i) { return 4096 * (1 + i % 8) + i % 97; }
static unsigned char churn_byte(int i, size_t k) { return (i * 131 + k * 7 + (k >> 9)) & 0xff; }

static int fail(const char *what, int n) {
    printf("error: %s at file %d: %s\n", what, n, strerror(errno));
    fflush(stdout);
    return 1;
}

static int lines(int from, int n) {
    char line[96];
    for (int j = from; j < from + n; j++) {
        int len = snprintf(line, sizeof line, "line %06d %s\n", j,
                           "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
        if (write(1, line, len) != len) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: churn DIR FILES LINES\n");
        return 2;
    }
    const char *dir = argv[1];
    int files = atoi(argv[2]), per_file = atoi(argv[3]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) return fail("open dir", -1);
    static unsigned char buf[4096 * 8 + 97];
    char tmp[256], name[256];
    snprintf(tmp, sizeof tmp, "%s/tmp", dir);
    for (int i = 0; i < files; i++) {
        if (lines(i * per_file, per_file) != 0) return fail("console write", i);
        size_t size = churn_size(i);
        for (size_t k = 0; k < size; k++)
            buf[k] = churn_byte(i, k);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) return fail("open", i);
        if (write(fd, buf, size) != (ssize_t)size) return fail("write", i);
        if (fsync(fd) != 0) return fail("fsync", i);
        if (close(fd) != 0) return fail("close", i);
        snprintf(name, sizeof name, "%s/f%05d", dir, i);
        if (rename(tmp, name) != 0) return fail("rename", i);
        if (fsync(dfd) != 0) return fail("fsync dir", i);
        printf("fsynced %d\n", i);
    }
    printf("done %d\n", files);
    return 0;
}
