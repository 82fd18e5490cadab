/* Fill a file system: write 1 MiB chunks to argv[1]/fill until a write fails,
 * then unlink it; print the free blocks statfs saw before, when full and
 * after, and what the writes managed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

static char chunk[1 << 20];

static long free_blocks(const char *dir, long *total)
{
    struct statfs s;
    if (statfs(dir, &s) < 0)
        return -1;
    if (total)
        *total = s.f_blocks;
    return s.f_bfree;
}

int main(int argc, char **argv)
{
    long blocks, before = free_blocks(argv[1], &blocks), full;
    long long written = 0;
    const char *error = "none";
    char path[256];
    snprintf(path, sizeof path, "%s/fill", argv[1]);
    int fd = open(path, O_CREAT | O_WRONLY | O_EXCL, 0600);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    memset(chunk, 'f', sizeof chunk);
    for (;;) {
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n < 0) {
            error = strerrorname_np(errno);
            break;
        }
        written += n;
    }
    full = free_blocks(argv[1], NULL);
    close(fd);
    unlink(path);
    printf("blocks=%ld free_before=%ld written=%lld error=%s free_full=%ld free_after=%ld\n",
           blocks, before, written, error, full, free_blocks(argv[1], NULL));
    return 0;
}
