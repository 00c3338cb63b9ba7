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

#include "core/pt.h"

struct pt_cycle;

struct pt_file {
    const char *path; /* as opened: absolute, or relative to the working directory */
    int fd;           /* O_WRONLY|O_APPEND|O_CLOEXEC; stable across pt_files_reopen */
    struct pt_file *next;
};

/*
 * Opens <path> with pt_file_open_append() as a file of cycle <c>,
 * or returns the entry <c> already has for the same path, so two logs naming one file
 * share one descriptor.  The entry lives in <c>'s pool and its descriptor is closed when
 * that pool is destroyed.  Returns NULL with errno set when the file cannot be opened (or
 * ENOMEM).
 */
struct pt_file *pt_file_open(struct pt_cycle *c, const char *path);

/*
 * Reopens every file of cycle <c> by its path, creating it if it was moved away, and
 * puts the new descriptor on the old number (dup3), so holders of the number need not
 * know.  A file still at its path (not rotated) is left as it is.  Files are opened with
 * pt_file_open_append(): when running as root and <uid> is not (uid_t)-1, a file created
 * here is given to <uid>, so that workers running as <uid> can reopen it in turn; nothing
 * else is ever chowned.  A file that cannot be reopened keeps its old descriptor (logged,
 * with the reason for a refused link).  Returns PT_OK, or PT_ERROR when at least one file
 * failed.  USR1 runs it first in the master (with the workers' uid), then in each worker
 * (with (uid_t)-1), as each process's descriptors are its own.
 */
int pt_files_reopen(struct pt_cycle *c, uid_t uid);

/*
 * Opens <path> for appending (O_WRONLY|O_APPEND|O_CLOEXEC), creating it with mode 0644 if
 * missing, the way every file portier writes logs to is opened.  The master may be root
 * and a log directory writable by the workers' user, who could plant a link there; so:
 * - the last component is not followed if it is a symbolic link, unless the link belongs
 *   to root (or to this process's user) and sits in a directory only they can change
 *   (not group- or other-writable, or sticky): "/var/log/portier/access.log" linked by
 *   root to /dev/stdout works, a link planted by the workers' user is refused (ELOOP).
 *   Directories above the file are the operator's: they should be root's;
 * - a regular file with more than one hard link is refused (EMLINK);
 * - a FIFO without a reader fails (ENXIO) instead of blocking;
 * - when running as root and <owner> is not (uid_t)-1, the file is given to <owner> only
 *   if this call created it (O_EXCL): an existing file is never chowned, and a warning
 *   says so when <owner> will not be able to reopen it.
 * Sets *<created> (if not NULL) to whether the file was created.  Returns the fd, or -1
 * with errno set: pt_file_strerror() gives the reason of a refusal.
 */
int pt_file_open_append(const char *path, uid_t owner, int *created);

/* strerror(<err>), or for ELOOP and EMLINK set by the last refusal of
 * pt_file_open_append() in this process, a sentence naming the file, why and the fix. */
const char *pt_file_strerror(int err);

/* Returns 1 if the file at <path> (links followed: nothing is opened) is the one <fd>
 * holds, so that a reopen has nothing to do; 0 otherwise. */
int pt_file_unchanged(int fd, const char *path);

#endif
