/*
 * prepare.c: what the master opens for a cycle before forking its workers, and releases
 * when a newer cycle replaces it: listeners, shared-memory zones, modules' master hooks.
 */
#include <stdio.h>
#include <string.h>

#include "worker/listen.h"
#include "core/log.h"
#include "master/master.h"
#include "core/module.h"
#include "core/shm.h"
#include "master/upgrade.h"

static int open_zone(struct pt_shm_zone *z, struct pt_cycle *old, char *err, size_t errlen)
{
    struct pt_shm_zone *prev = old ? pt_shm_zone_find(old->zones, z->name) : NULL;
    int fd = old ? -1 : pt_upgrade_take_zone_fd(z->name);

    /* A binary upgrade hands the previous binary's zone over: its state (upstream health,
     * counters) carries on when the layout is the same. */
    if (fd >= 0) {
        int rc = pt_shm_zone_adopt_fd(z, fd);
        if (rc == PT_OK) {
            pt_log(PT_LOG_NOTICE, "shared memory zone \"%s\" inherited from the previous binary",
                   z->name);
            return PT_OK;
        }
        if (rc == PT_DECLINED)
            pt_log(PT_LOG_NOTICE, "shared memory zone \"%s\" starts empty: %s", z->name,
                   z->declined ? z->declined : "incompatible");
    }

    if (prev && prev->addr) {
        int rc = pt_shm_zone_take_over(z, prev);
        if (rc == PT_OK)
            return PT_OK;
        if (rc == PT_DECLINED)
            pt_log(PT_LOG_NOTICE, "shared memory zone \"%s\" starts empty: %s", z->name,
                   z->declined ? z->declined : "changed");
    }
    if (pt_shm_zone_create(z) != PT_OK) {
        snprintf(err, errlen, "cannot create shared memory zone \"%s\" (%zu bytes): %m", z->name,
                 z->size);
        return PT_ERROR;
    }
    return PT_OK;
}

int pt_master_prepare(struct pt_cycle *cycle, struct pt_cycle *old, char *err, size_t errlen)
{
    for (int i = 0; pt_modules[i]; i++) {
        if (pt_modules[i]->init_master && pt_modules[i]->init_master(cycle) != PT_OK) {
            snprintf(err, errlen, "module %s failed to initialise", pt_modules[i]->name);
            return PT_ERROR;
        }
    }
    if (pt_listen_open_all(cycle->listens, old ? old->listens : NULL, err, errlen) != PT_OK)
        return PT_ERROR;
    for (struct pt_shm_zone *z = cycle->zones; z; z = z->next) {
        if (open_zone(z, old, err, errlen) != PT_OK) {
            pt_listen_undo(cycle->listens);
            return PT_ERROR;
        }
    }
    return PT_OK;
}

void pt_master_release(struct pt_cycle *old)
{
    pt_listen_close_all(old->listens);
    for (struct pt_shm_zone *z = old->zones; z; z = z->next)
        pt_shm_zone_destroy(z);
}
