/*
 * module.h: the module interface.  A module is a struct known at compile time: its name,
 * its directive table, constructors and mergers of its per-context configuration, and
 * process hooks.  CMake writes the list (pt_modules[]) in order; every module gets an
 * index into the per-context configuration arrays.
 */
#ifndef PT_MODULE_H
#define PT_MODULE_H

#include "core/pt.h"

struct pt_cycle;
struct pt_conf;
struct pt_directive;

/* Where a directive may appear (bit set). */
#define PT_CTX_MAIN 0x01u
#define PT_CTX_HTTP 0x02u
#define PT_CTX_SRV  0x04u
#define PT_CTX_LOC  0x08u
#define PT_CTX_UPS  0x10u

/* Which configuration struct a directive's offset points into. */
enum pt_conf_level { PT_MAIN_CONF, PT_SRV_CONF, PT_LOC_CONF, PT_UPS_CONF };

/* Directive flags. */
#define PT_DIR_MULTI 0x01u /* may take a list; the setter runs once per element */
#define PT_DIR_BLOCK 0x02u /* a group or list of groups, handled by its setter */

/*
 * A directive's setter.  <cf> carries the value being set (cf->value, and cf->setting for
 * block setters), <d> the table row, <conf> the struct the row's level selects.  Returns
 * PT_OK, or PT_ERROR after reporting through pt_conf_error().
 */
typedef int (*pt_directive_set)(struct pt_conf *cf, const struct pt_directive *d, void *conf);

struct pt_directive {
    const char *name;
    unsigned where; /* PT_CTX_* bits */
    unsigned flags; /* PT_DIR_* bits */
    enum pt_conf_level level;
    pt_directive_set set;
    size_t offset;    /* of the field in the level's struct */
    const void *post; /* setter-specific (an enum table, a bound) */
    const char *help; /* one line for the configuration reference */
};

struct pt_module {
    const char *name;
    const struct pt_directive *directives; /* NULL-name terminated, may be NULL */

    /* Per-context configuration: create returns a zeroed struct with unset markers, or NULL
     * when out of memory; merge fills unset fields of <child> from <parent> and defaults. */
    void *(*create_main_conf)(struct pt_conf *cf);
    int (*init_main_conf)(struct pt_conf *cf, void *conf);
    void *(*create_srv_conf)(struct pt_conf *cf);
    int (*merge_srv_conf)(struct pt_conf *cf, void *parent, void *child);
    void *(*create_loc_conf)(struct pt_conf *cf);
    int (*merge_loc_conf)(struct pt_conf *cf, void *parent, void *child);

    /* After the whole file is read and merged: register phase handlers, filters and
     * variables in <cycle>.  PT_OK or PT_ERROR (after logging through pt_conf_error). */
    int (*postconfig)(struct pt_conf *cf);

    /* In the master, once the cycle is accepted, before forking: declare shm zones, load files. */
    int (*init_master)(struct pt_cycle *cycle);
    /* In each worker after privileges are dropped, and when it exits. */
    int (*init_worker)(struct pt_cycle *cycle);
    void (*exit_worker)(struct pt_cycle *cycle);
    /* In the helper process (forked when cycle->need_helper), after privileges are dropped:
     * start the module's periodic work on the helper's event loop.  PT_OK or PT_ERROR. */
    int (*init_helper)(struct pt_cycle *cycle);

    int index; /* set at start-up: this module's slot in the configuration arrays */
};

/* The modules built in, in order, NULL-terminated (written by CMake). */
extern struct pt_module *pt_modules[];

/* Number of modules; also assigns each its index.  Idempotent. */
int pt_modules_count(void);

#endif
