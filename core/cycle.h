/*
 * cycle.h: one generation of configuration and everything built from it: the modules'
 * configuration, listening sockets, shared-memory zones and log files.  The master loads a
 * new cycle on HUP and keeps the old one if that fails.
 */
#ifndef PT_CYCLE_H
#define PT_CYCLE_H

#include <stdint.h>
#include <sys/types.h>

#include "core/pt.h"

struct pt_pool;
struct pt_listen;
struct pt_shm_zone;

struct pt_cycle {
    struct pt_pool *pool;
    const char *conf_file;
    const char *prefix;
    unsigned generation;

    void **main_conf; /* per module index */

    struct pt_listen *listens;
    struct pt_shm_zone *zones;
    struct pt_file *files;    /* log files opened for this cycle (files.h) */
    unsigned need_helper : 1; /* a module has work for the helper process */
};

/* The cycle this process runs. */
extern struct pt_cycle *pt_cycle;

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
