/*
 * helper.h: the helper process (see helper.c).
 */
#ifndef PT_HELPER_H
#define PT_HELPER_H

#include "core/cycle.h"

/* Runs the helper process for <cycle> in the current (forked) process and never returns:
 * starts the modules' periodic work (init_helper) and exits 0 on QUIT or TERM,
 * PT_EXIT_FATAL when it cannot start. */
void pt_helper_main(struct pt_cycle *cycle) __attribute__((noreturn));

#endif
