/*
 * files.h: the log files of a cycle.  The master opens them while reading the
 * configuration (it may be root and the workers not); workers inherit the descriptors
 * through fork.  On USR1 (logrotate) every process reopens them by path and puts the new
 * descriptor on the old number, so whoever holds the number keeps writing, now to the new
 * file.
 */
#ifndef PT_FILES_H
#define PT_FILES_H

#include <sys/types.h>

#include "pt.h"

struct pt_cycle;

struct pt_file {
    const char *path; /* as opened: absolute, or relative to the working directory */
    int fd;           /* O_WRONLY|O_APPEND|O_CLOEXEC; stable across pt_files_reopen */
    struct pt_file *next;
};

/*
 * Opens <path> for appending (created with mode 0644 if missing) as a file of cycle <c>,
 * or returns the entry <c> already has for the same path, so two logs naming one file
 * share one descriptor.  The entry lives in <c>'s pool and its descriptor is closed when
 * that pool is destroyed.  Returns NULL with errno set when the file cannot be opened (or
 * ENOMEM).
 */
struct pt_file *pt_file_open(struct pt_cycle *c, const char *path);

/*
 * Reopens every file of cycle <c> by its path, creating it if it was moved away, and
 * puts the new descriptor on the old number (dup3), so holders of the number need not
 * know.  When running as root and <uid> is not (uid_t)-1, a file not owned by <uid> is
 * given to it, so that workers running as <uid> can reopen it in turn.  A file that cannot
 * be reopened keeps its old descriptor (logged).  Returns PT_OK, or PT_ERROR when at least
 * one file failed.  USR1 runs it first in the master (with the workers' uid), then in each
 * worker (with (uid_t)-1), as each process's descriptors are its own.
 */
int pt_files_reopen(struct pt_cycle *c, uid_t uid);

#endif
