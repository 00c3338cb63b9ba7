/*
 * upgrade.h: binary upgrade on USR2, nginx's way: the master renames its pid file to
 * PID.oldbin and starts the binary on disk as a new master that inherits the listening
 * sockets and the shared-memory zones (PORTIER_INHERIT=fd;fd;...).  Both generations
 * serve until the operator stops the old workers (WINCH) and commits (QUIT to the old
 * master) or rolls back (HUP to the old master, QUIT to the new one).
 */
#ifndef PT_UPGRADE_H
#define PT_UPGRADE_H

#include <sys/types.h>

#include "core/cycle.h"

/* Remembers how this process was started (argv, the binary's path, the working
 * directory) before anything overwrites argv.  Call once, first thing in main. */
void pt_upgrade_save_argv(int argc, char **argv);

/* True when this process was started by an upgrade (it must not daemonize again). */
int pt_upgrade_inherited(void);

/* Starts the new master for <cycle>'s listeners and zones, and renames <pidfile> to
 * <pidfile>.oldbin.  Returns the new master's pid, or -1 after logging why (nothing
 * changed then). */
pid_t pt_upgrade_start(struct pt_cycle *cycle, const char *pidfile);

/* After the new master exited: puts <pidfile>.oldbin back as <pidfile>. */
void pt_upgrade_restore_pidfile(const char *pidfile);

/* The zone memfd named <name> inherited from the previous binary, or -1.  Each is handed
 * out once. */
int pt_upgrade_take_zone_fd(const char *name);

#endif
