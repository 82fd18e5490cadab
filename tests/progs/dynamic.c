/* A dynamically linked program: the guest's own ld.so loads it and libc
 * from the guest's disk.  Prints what it sees of its loading; run natively
 * (in a chroot of the same tree) and in a guest, the output must match. */
#define _GNU_SOURCE
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

extern char _start[];

static int object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    if ((*(int *)data)++ == 0)
        printf("AT_PHDR is the program's headers: %s\n",
               getauxval(AT_PHDR) == (unsigned long)info->dlpi_phdr ? "yes" : "no");
    printf("object: %s\n", info->dlpi_name[0] ? info->dlpi_name : "(the program)");
    return 0;
}

static void *worker(void *arg)
{
    return (void *)(strlen((char *)arg) * 2);
}

static int cmp(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

int main(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        printf("argv[%d] = %s\n", i, argv[i]);
    printf("AT_BASE set: %s\n", getauxval(AT_BASE) ? "yes" : "no");
    printf("AT_ENTRY is _start: %s\n", getauxval(AT_ENTRY) == (unsigned long)_start ? "yes" : "no");
    int n = 0;
    dl_iterate_phdr(object, &n);
    pthread_t th;
    void *res;
    pthread_create(&th, NULL, worker, "threads work");
    pthread_join(th, &res);
    printf("thread: %ld\n", (long)res);
    int v[] = {5, 3, 9, 1, 7};
    qsort(v, 5, sizeof v[0], cmp);
    char *s = malloc(64);
    snprintf(s, 64, "%d %d %d %d %d %.3f", v[0], v[1], v[2], v[3], v[4], 2.0 / 3);
    puts(s);
    free(s);
    return 0;
}
