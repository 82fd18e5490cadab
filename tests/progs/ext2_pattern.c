/* Write argv[2] MiB to argv[1] in 1 MiB writes, each 4 KiB block i of the
 * file being "%08d" of i repeated, so that a block in the wrong place shows.
 * usage: ext2_pattern FILE MIB */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char chunk[1 << 20];

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int fd = open(argv[1], O_CREAT | O_TRUNC | O_WRONLY, 0644), mib = atoi(argv[2]);
    if (fd < 0) {
        perror(argv[1]);
        return 1;
    }
    for (int m = 0; m < mib; m++) {
        for (int b = 0; b < 256; b++) {
            char word[12];
            snprintf(word, sizeof word, "%08d", m * 256 + b);
            for (int k = 0; k < 4096; k += 8)
                memcpy(chunk + b * 4096 + k, word, 8);
        }
        if (write(fd, chunk, sizeof chunk) != sizeof chunk) {
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
