/* cycle.c: loading a configuration generation and declaring its shared-memory zones. */
#include "core/cycle.h"

#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf.h"
#include "core/log.h"
#include "core/pool.h"
#include "core/shm.h"

struct pt_cycle *pt_cycle;

int pt_modules_count(void)
{
    /* The list is fixed at build time: count it once (requests ask for it too). */
    static int n = -1;

    if (n >= 0)
        return n;
    for (n = 0; pt_modules[n]; n++)
        pt_modules[n]->index = n;
    return n;
}

struct pt_shm_zone *pt_cycle_add_zone(struct pt_cycle *c, const char *name, size_t size,
                                      uint32_t version,
                                      int (*init)(struct pt_shm_zone *zone, int reused), void *ctx)
{
    struct pt_shm_zone *z = pt_shm_zone_find(c->zones, name);

    if (z)
        return z->size == size && z->version == version ? z : NULL;
    if (strlen(name) >= PT_SHM_NAME_MAX || (z = pt_palloc(c->pool, sizeof(*z))) == NULL)
        return NULL;
    snprintf(z->name, sizeof(z->name), "%s", name);
    z->size = size;
    z->version = version;
    z->init = init;
    z->ctx = ctx;
    z->fd = -1;
    z->next = c->zones;
    c->zones = z;
    return z;
}

static int finish(struct pt_conf *cf)
{
    for (int i = 0; pt_modules[i]; i++) {
        struct pt_module *m = pt_modules[i];
        if (m->init_main_conf && m->init_main_conf(cf, cf->cycle->main_conf[i]) != PT_OK)
            return PT_ERROR;
    }
    for (int i = 0; pt_modules[i]; i++) {
        struct pt_module *m = pt_modules[i];
        cf->setting = NULL;
        if (m->postconfig && m->postconfig(cf) != PT_OK)
            return PT_ERROR;
    }
    return pt_conf_run_deferred(cf);
}

struct pt_cycle *pt_cycle_load(const char *file, const char *prefix, char *err, size_t errlen)
{
    static unsigned generation;
    config_t lc;
    struct pt_cycle *c;
    struct pt_conf cf = {0};
    struct pt_conf_ctx root = {0};
    int rc;

    err[0] = '\0';
    pt_modules_count();
    if (pt_conf_read_file(&lc, file, file, err, errlen) != PT_OK)
        return NULL;
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->pool = pt_pool_create(16384)) == NULL) {
        free(c);
        config_destroy(&lc);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->generation = ++generation;
    c->conf_file = pt_pstrdup(c->pool, file);
    c->prefix = prefix ? pt_pstrdup(c->pool, prefix) : NULL;
    cf.cycle = c;
    cf.pool = c->pool;
    cf.file = file;
    cf.err = err;
    cf.errlen = errlen;

    rc = pt_conf_create_level(&cf, PT_MAIN_CONF, &c->main_conf);
    root.main_conf = c->main_conf;
    if (rc == PT_OK)
        rc = pt_conf_read_block(&cf, pt_conf_root(&lc), PT_CTX_MAIN, &root, NULL);
    if (rc == PT_OK)
        rc = finish(&cf);
    pt_conf_release(&cf);
    config_destroy(&lc);
    if (rc != PT_OK || cf.failed) {
        if (err[0] == '\0')
            snprintf(err, errlen, "%s: invalid configuration", file);
        pt_cycle_free(c);
        return NULL;
    }
    return c;
}

void pt_cycle_free(struct pt_cycle *c)
{
    if (c == NULL)
        return;
    pt_pool_destroy(c->pool);
    free(c);
}
