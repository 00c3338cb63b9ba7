/* proctitle.c: process titles. */
#include "core/proctitle.h"

#include <stdio.h>
#include <string.h>

static char *area;
static size_t area_len;

void pt_proctitle_init(int argc, char **argv)
{
    /* The argv strings are contiguous: the title may use all of their bytes. */
    if (argc < 1)
        return;
    area = argv[0];
    area_len = 0;
    for (int i = 0; i < argc; i++) {
        if (argv[i] != area + area_len)
            break;
        area_len += strlen(argv[i]) + 1;
    }
}

void pt_proctitle_set(const char *title)
{
    /* comm stays "portier", so that `ps -C portier` and `pkill portier` keep working. */
    if (area == NULL || area_len < 2)
        return;
    memset(area, 0, area_len);
    snprintf(area, area_len, "%s", title);
}
