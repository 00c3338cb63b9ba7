/*
 * reference.c: the configuration reference, generated from the directive tables so that
 * the documentation cannot drift from the code (portier -R prints it; README.md holds it).
 */
#include <stdio.h>
#include <string.h>

#include "config/conf.h"

static void contexts(unsigned where, char *buf, size_t len)
{
    static const struct {
        unsigned bit;
        const char *name;
    } ctx[] = {{PT_CTX_MAIN, "main"},
               {PT_CTX_HTTP, "http"},
               {PT_CTX_SRV, "server"},
               {PT_CTX_LOC, "location"},
               {PT_CTX_UPS, "upstream"}};
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(ctx) / sizeof(ctx[0]); i++)
        if (where & ctx[i].bit)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", ctx[i].name);
}

/* Table cells may not hold a bare '|'. */
static void cell(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s, f);
    }
}

void pt_conf_print_reference(FILE *f)
{
    char where[64];

    for (int i = 0; pt_modules[i]; i++) {
        const struct pt_directive *d = pt_modules[i]->directives;
        if (d == NULL || d->name == NULL)
            continue;
        fprintf(f, "\n#### module `%s`\n\n| directive | where | meaning |\n|---|---|---|\n",
                pt_modules[i]->name);
        for (; d->name; d++) {
            contexts(d->where, where, sizeof(where));
            fprintf(f, "| `%s`%s | %s | ", d->name, d->flags & PT_DIR_MULTI ? " (list)" : "",
                    where);
            cell(f, d->help);
            fputs(" |\n", f);
        }
    }
}
