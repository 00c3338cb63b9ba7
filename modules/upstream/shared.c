/*
 * shared.c: the upstream module's shared-memory state: one zone, "upstream", with a lock
 * per group and the state of every peer (passive and active health, counters, runtime
 * control, resolved addresses), bound to the configuration's groups by name so that a
 * reload finds it again.
 */
#include <stdio.h>
#include <string.h>

#include "core/cycle.h"
#include "core/shm.h"
#include "core/shmtx.h"
#include "modules/upstream/upstream_internal.h"

#define ZONE_SIZE    (1u << 20)
#define ZONE_VERSION 3   /* 3: health checks, runtime control, resolved addresses */
#define GROUPS_MAX   512 /* group entries in the zone */

/* A group's shared state: the lock that makes its choices one sequence for all workers. */
struct group_shared {
    char key[88]; /* the group's name */
    struct pt_shmtx lock;
};

/* The zone's root: tables of group and peer states, found again by key after a reload. */
struct zone_root {
    uint32_t ngroups, npeers, peer_cap;
    uint32_t binds; /* configurations bound so far: tells entries still named from orphans */
    struct group_shared groups[GROUPS_MAX];
    struct pt_peer_shared peers[];
};

/* Finds the entry keyed <key> among the *<n> entries of <size> bytes at <base> (each starts
 * with its key), else claims the next one (zeroed) and sets *<fresh>; NULL when all <cap>
 * are taken.  Only the master claims entries, so workers never see a half-written key. */
static void *find_entry(void *base, size_t size, uint32_t *n, uint32_t cap, const char *key,
                        int *fresh)
{
    char *e = base;

    for (uint32_t i = 0; i < *n; i++, e += size)
        if (strcmp(e, key) == 0)
            return e;
    if (*n == cap)
        return NULL;
    strcpy(e, key);
    (*n)++;
    *fresh = 1;
    return e;
}

/* Points <u> at its shared state in <t>, creating what a new group or peer needs. */
static int bind_group(struct zone_root *t, struct pt_upstream *u)
{
    char key[sizeof(t->peers[0].key)];
    struct group_shared *g;
    int fresh = 0;

    snprintf(key, sizeof(t->groups[0].key), "%s", u->name);
    g = find_entry(t->groups, sizeof(*g), &t->ngroups, GROUPS_MAX, key, &fresh);
    /* A lock is initialized once, when its entry is claimed: after a reload, workers of
     * the old generation may be holding it. */
    if (g == NULL || (fresh && pt_shmtx_init(&g->lock) != PT_OK))
        return PT_ERROR;
    u->lock = &g->lock;
    for (int j = 0; j < u->npeers; j++) {
        snprintf(key, sizeof(key), "%s/%s", u->name, u->peers[j].name);
        u->peers[j].shared =
            find_entry(t->peers, sizeof(t->peers[0]), &t->npeers, t->peer_cap, key, &fresh);
        if (u->peers[j].shared == NULL)
            return PT_ERROR;
        u->peers[j].shared->bound = t->binds;
        /* Connections counted by workers of a previous generation are theirs to
         * release; a fresh table starts at zero. */
    }
    return PT_OK;
}

/* A server the new configuration no longer names keeps its entry (old workers may still
 * count its connections) but not what an operator or the checks said of it: were it added
 * back later, it starts as configured. */
static void forget_orphans(struct zone_root *t)
{
    for (uint32_t i = 0; i < t->npeers; i++) {
        struct pt_peer_shared *s = &t->peers[i];
        if (s->bound == t->binds)
            continue;
        __atomic_store_n(&s->admin, PT_ADMIN_NONE, __ATOMIC_RELAXED);
        __atomic_store_n(&s->admin_weight, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->health, PT_HEALTH_UNKNOWN, __ATOMIC_RELAXED);
        __atomic_store_n(&s->check_passes, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->check_fails, 0, __ATOMIC_RELAXED);
    }
}

static int zone_init(struct pt_shm_zone *zone, int reused)
{
    struct ups_main_conf *mc = zone->ctx;
    struct zone_root *t = reused ? pt_shm_root(zone) : NULL;

    if (t == NULL) {
        size_t room = ZONE_SIZE - 64 * 1024;
        t = pt_slab_alloc(zone->pool, room);
        if (t == NULL)
            return PT_ERROR;
        t->peer_cap = (uint32_t)((room - sizeof(*t)) / sizeof(t->peers[0]));
        pt_shm_set_root(zone, t);
    }
    t->binds++;
    for (int i = 0; i < mc->nups; i++)
        if (bind_group(t, mc->ups[i]) != PT_OK)
            return PT_ERROR;
    forget_orphans(t);
    return PT_OK;
}

int pt_upstream_zone_add(struct pt_conf *cf, struct ups_main_conf *mc)
{
    struct pt_shm_zone *z;

    z = pt_cycle_add_zone(cf->cycle, "upstream", ZONE_SIZE, ZONE_VERSION, zone_init, mc);
    if (z == NULL)
        return pt_conf_error(cf, "cannot declare the upstream shared memory zone");
    return PT_OK;
}
