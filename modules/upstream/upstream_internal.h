/*
 * upstream_internal.h: what the files of the upstream module share with one another and
 * with no one else: the module's main configuration (its groups, upstream.c), the shared
 * memory that holds the peers' state (shared.c), and a worker's random numbers (passive.c).
 */
#ifndef PT_UPSTREAM_INTERNAL_H
#define PT_UPSTREAM_INTERNAL_H

#include "config/conf.h"
#include "modules/upstream/upstream.h"

struct pt_cycle;

/* The module's main configuration: the cycle's upstream groups, implicit ones included. */
struct ups_main_conf {
    struct pt_upstream **ups;
    int nups, cap;
};

/* Declares the cycle's "upstream" shared memory zone for the groups of <mc>: when it is
 * mapped, every group and peer is bound to its state there, found again by name after a
 * reload.  PT_OK, else PT_ERROR reported against <cf>. */
int pt_upstream_zone_add(struct pt_conf *cf, struct ups_main_conf *mc);

/* In a worker, once after the fork: seeds its random numbers (the random balancer) apart
 * from the other workers'. */
void pt_upstream_seed(struct pt_cycle *cycle);

#endif
