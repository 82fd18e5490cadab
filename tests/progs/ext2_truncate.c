/* truncate(2), which busybox's truncate does not call (it opens the file
 * and uses ftruncate): path and size from the command line.
 * usage: ext2_truncate FILE SIZE */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    if (truncate(argv[1], atoll(argv[2])) < 0) {
        perror(argv[1]);
        return 1;
    }
    return 0;
}
