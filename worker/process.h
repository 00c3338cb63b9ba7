/*
 * process.h: the start of every child process of the master (a worker or the helper), and
 * the signals it was sent.
 */
#ifndef PT_PROCESS_H
#define PT_PROCESS_H

#include <signal.h>

#include "core/cycle.h"

/* Set by the signal handlers, read and cleared by the process's main loop: QUIT (graceful
 * stop), TERM or INT (fast stop), USR1 (reopen the logs). */
extern volatile sig_atomic_t pt_sig_quit, pt_sig_term, pt_sig_reopen;

/* Makes the current (forked) process the <role> ("worker", "helper") of <cycle>: its log
 * role and process title <title>, its signal handlers (blocked outside the loop's wait),
 * the fd limit, the configured user and no core dumps, and its event loop; sets
 * pt_cycle.  Exits with PT_EXIT_FATAL when that fails. */
void pt_process_start(struct pt_cycle *cycle, const char *role, const char *title);

#endif
