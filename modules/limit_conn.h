/*
 * limit_conn.h: the limit_conn module's count of connections per key, apart from requests,
 * so that tests can drive it as several processes.
 *
 * A zone counts, per key, the connections of every process, and which process holds how
 * many: a process that dies holding some (killed, crashed) cannot give them back, so when
 * a key reaches its limit, or the zone runs out of room, the counts of processes that no
 * longer exist are dropped first.  A worker that exits gives back what it still holds.
 */
#ifndef PT_LIMIT_CONN_H
#define PT_LIMIT_CONN_H

#include <stdint.h>
#include <sys/types.h>

#include "worker/limit_zone.h"

/* One connection counted (or to count) for a key in a zone. */
struct pt_limit_conn_hold {
    struct pt_limit_zone *zone;
    struct pt_str key;
    pid_t pid;      /* the process counted as holding it */
    uint32_t epoch; /* the zone's when taken: emptied since, nothing to give back */
    unsigned held : 1;
};

/* Counts one more connection of <h>'s key held by <h>->pid, if fewer than <max> are
 * counted (after dropping those of processes that are gone).  Returns PT_OK (<h> held),
 * PT_DECLINED at the limit, or PT_ERROR when the zone has no room for the key (logged) or
 * cannot be locked. */
int pt_limit_conn_take(struct pt_limit_conn_hold *h, uint32_t max);

/* Gives <h>'s connection back if it holds one; <h> holds none after. */
void pt_limit_conn_give(struct pt_limit_conn_hold *h);

/* Gives back every connection <pid> holds in <lz> (a worker's exit). */
void pt_limit_conn_forget(struct pt_limit_zone *lz, pid_t pid);

/* The connections counted for <key> in <lz> (tests). */
uint32_t pt_limit_conn_count(struct pt_limit_zone *lz, struct pt_str key);

#endif
