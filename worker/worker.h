/*
 * worker.h: the worker process: listeners, the event loop, graceful exit.
 */
#ifndef PT_WORKER_H
#define PT_WORKER_H

#include "core/cycle.h"

/* Runs a worker for <cycle> in the current (forked) process and never returns: exits 0
 * after a graceful or fast stop, PT_EXIT_FATAL when it cannot start. */
void pt_worker_main(struct pt_cycle *cycle, int slot) __attribute__((noreturn));

/* Set in a worker the master started in the place of one that died (not at start or
 * reload): the metrics count it as a restart. */
extern int pt_worker_respawned;

#endif
