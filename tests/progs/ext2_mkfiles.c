/* A big directory, fast (a shell loop forking touch 10,000 times is slow):
 * create DIR/e00000.. (COUNT of them, O_CREAT|O_EXCL), unlink every tenth,
 * then create f-named ones of the same length in their place, which must
 * fit the gaps left.  Prints the directory's size before and after the swap.
 * usage: ext2_mkfiles DIR COUNT */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int make(const char *dir, char letter, int i)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%c%05d", dir, letter, i);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (fd < 0 || close(fd) < 0) {
        perror(path);
        return -1;
    }
    return 0;
}

static long long size_of(const char *dir)
{
    struct stat st;
    return stat(dir, &st) < 0 ? -1 : (long long)st.st_size;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    const char *dir = argv[1];
    int n = atoi(argv[2]);
    char path[512];
    if (mkdir(dir, 0755) < 0) {
        perror(dir);
        return 1;
    }
    for (int i = 0; i < n; i++)
        if (make(dir, 'e', i) < 0)
            return 1;
    long long before = size_of(dir);
    for (int i = 5; i < n; i += 10) {
        snprintf(path, sizeof path, "%s/e%05d", dir, i);
        if (unlink(path) < 0) {
            perror(path);
            return 1;
        }
    }
    for (int i = 5; i < n; i += 10)
        if (make(dir, 'f', i) < 0)
            return 1;
    printf("size %lld %lld\n", before, size_of(dir));
    return 0;
}
