/* Write argv[2] MiB to argv[1], argv[3] MiB per write() (default 1; with
 * "v", per writev() of 3 MiB buffers), each 4 KiB block i of the file being
 * "%08d" of i repeated, so that a block in the wrong place shows.
 * usage: ext2_pattern FILE MIB [MIB_PER_WRITE [v]] */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5)
        return 2;
    int vectored = argc == 5 && !strcmp(argv[4], "v");
    int fd = open(argv[1], O_CREAT | O_TRUNC | O_WRONLY, 0644), mib = atoi(argv[2]);
    int per = argc == 4 ? atoi(argv[3]) : 1;
    size_t size = (size_t)per << 20;
    char *chunk = malloc(size);
    if (fd < 0 || !chunk || per < 1 || mib % per) {
        perror(argv[1]);
        return 1;
    }
    for (int m = 0; m < mib; m += per) {
        for (int b = 0; b < 256 * per; b++) {
            char word[12];
            snprintf(word, sizeof word, "%08d", m * 256 + b);
            for (int k = 0; k < 4096; k += 8)
                memcpy(chunk + (size_t)b * 4096 + k, word, 8);
        }
        ssize_t n;
        if (vectored) {
            struct iovec iov[64];
            int cnt = 0;
            for (size_t at = 0; at < size && cnt < 64; at += 3 << 20, cnt++) {
                iov[cnt].iov_base = chunk + at;
                iov[cnt].iov_len = size - at < (3 << 20) ? size - at : 3 << 20;
            }
            n = writev(fd, iov, cnt);
        } else {
            n = write(fd, chunk, size);
        }
        if (n != (ssize_t)size) {
            fprintf(stderr, "write: %zd of %zu\n", n, size);
            perror("write");
            return 1;
        }
    }
    if (close(fd) < 0) {
        perror("close");
        return 1;
    }
    printf("wrote %d MiB\n", mib);
    return 0;
}
