/*
 * master.h: the master process: spawning and reaping workers, signals, reload.
 */
#ifndef PT_MASTER_H
#define PT_MASTER_H

#include "core/cycle.h"

/* Everything the master was started with, for reloads (and, later, re-exec). */
struct pt_master_args {
    const char *conf_file;
    const char *prefix;
    char **argv;
};

/* Runs the master loop for <cycle>, whose listeners are open, until it is told to stop.
 * Returns the process exit code. */
int pt_master_run(struct pt_cycle *cycle, const struct pt_master_args *args);

/* Opens what a cycle needs in the master before workers are forked: listeners (reusing
 * those of <old>), shm zones (taking over <old>'s where compatible) and modules' master
 * hooks.  On failure writes why into <err> and returns PT_ERROR with nothing of <old>
 * disturbed. */
int pt_master_prepare(struct pt_cycle *cycle, struct pt_cycle *old, char *err, size_t errlen);

/* Releases what <old> holds in the master after a newer cycle took over. */
void pt_master_release(struct pt_cycle *old);

#endif
