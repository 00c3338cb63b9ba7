/*
 * cycle.h: one generation of configuration and everything built from it: the modules'
 * configuration, listening sockets, shared-memory zones, phase handlers, filters and
 * variables.  The master loads a new cycle on HUP and keeps the old one if that fails.
 */
#ifndef PT_CYCLE_H
#define PT_CYCLE_H

#include <stdint.h>
#include <sys/types.h>

#include "pt.h"

struct pt_pool;
struct pt_listen;
struct pt_shm_zone;
struct pt_request;

/* Phases of a request, in order (DESIGN.md "request lifecycle"). */
enum pt_phase {
    PT_PHASE_POST_READ,
    PT_PHASE_SERVER_REWRITE,
    PT_PHASE_FIND_CONFIG,
    PT_PHASE_REWRITE,
    PT_PHASE_ACCESS,
    PT_PHASE_CONTENT,
    PT_PHASE_LOG,
    PT_NPHASES
};

/* A phase handler returns PT_OK (phase done), PT_DECLINED (next handler), PT_AGAIN (it
 * will resume the request itself), PT_DONE (request taken over), PT_ERROR (500) or an
 * HTTP status >= 100 (finalize with it). */
typedef int (*pt_phase_handler)(struct pt_request *r);

/* A header filter may edit r's response status and headers; it returns PT_OK or PT_ERROR. */
typedef int (*pt_header_filter)(struct pt_request *r);

/* A body filter receives <len> bytes at <data> (<last> on the final call) and passes what
 * it produces on with pt_body_filter_next(r, <self>, ...).  It must not keep <data> after
 * it returns.  Returns PT_OK or PT_ERROR. */
typedef int (*pt_body_filter)(struct pt_request *r, int self, const char *data, size_t len,
                              int last);

#define PT_MAX_PHASE_HANDLERS 16
#define PT_MAX_FILTERS        16

struct pt_cycle {
    struct pt_pool *pool;
    const char *conf_file;
    const char *prefix;
    unsigned generation;

    void **main_conf;                      /* per module index */
    void **http_srv_conf, **http_loc_conf; /* http{}-level defaults, per module index */

    struct pt_listen *listens;
    struct pt_shm_zone *zones;
    struct pt_file *files;    /* log files opened for this cycle (files.h) */
    unsigned need_helper : 1; /* a module has work for the helper process */

    pt_phase_handler phases[PT_NPHASES][PT_MAX_PHASE_HANDLERS];
    int nphase[PT_NPHASES];
    pt_header_filter header_filters[PT_MAX_FILTERS];
    int nheader_filters;
    pt_body_filter body_filters[PT_MAX_FILTERS];
    int nbody_filters;
};

/* The cycle this process runs. */
extern struct pt_cycle *pt_cycle;

/* Registers <h> to run in phase <ph> of <c>, after those registered before.  PT_OK or
 * PT_ERROR when the phase is full. */
int pt_phase_add(struct pt_cycle *c, enum pt_phase ph, pt_phase_handler h);

/* Adds a header or body filter; filters run in registration order. */
int pt_header_filter_add(struct pt_cycle *c, pt_header_filter f);
int pt_body_filter_add(struct pt_cycle *c, pt_body_filter f);

/* Declares a shared-memory zone of <c> (at config time, from a module's postconfig): the
 * master creates it, or keeps the previous generation's zone of the same name, size and
 * <version>, before forking workers.  <init> runs once it is mapped (see shm.h).  Declaring
 * the same name twice returns the existing zone if size and version agree.  Returns the
 * zone, or NULL (out of memory, or a conflicting declaration). */
struct pt_shm_zone *pt_cycle_add_zone(struct pt_cycle *c, const char *name, size_t size,
                                      uint32_t version,
                                      int (*init)(struct pt_shm_zone *zone, int reused), void *ctx);

/* Reads <file> (with <prefix> for relative paths) into a new cycle.  On failure returns NULL
 * and writes "file:line: message" into <err>. */
struct pt_cycle *pt_cycle_load(const char *file, const char *prefix, char *err, size_t errlen);

/* Frees <c> (its listeners and zones must have been released or handed on first). */
void pt_cycle_free(struct pt_cycle *c);

/* Main configuration of module <m> in cycle <c>. */
#define pt_cycle_main_conf(c, m) ((c)->main_conf[(m).index])

#endif
