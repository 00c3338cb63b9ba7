/*
 * proctitle.h: process titles, so that ps shows "portier: worker process" the way nginx
 * users expect, and tools can tell the master from its workers.
 */
#ifndef PT_PROCTITLE_H
#define PT_PROCTITLE_H

/* Remembers the argv area of the process (call once from main). */
void pt_proctitle_init(int argc, char **argv);

/* Sets the title shown in /proc/PID/cmdline (within the original argv's length). */
void pt_proctitle_set(const char *title);

#endif
