/* What the benchmarks share: a microsecond clock, and the median and mean
   of a sample printed as "NAME median_us M mean_us A" for run.py. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double *us, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += us[i];
    qsort(us, n, sizeof *us, cmp);
    printf("%s median_us %.3f mean_us %.3f\n", name, us[n / 2], sum / n);
}
