/*
 * log.h: the error log.  One file (or stderr) per process, a level threshold, and a
 * reopen for USR1.  Lines read "2026/11/22 18:00:00 [warn] 1234#0: message".
 */
#ifndef PT_LOG_H
#define PT_LOG_H

#include <stdarg.h>
#include <sys/types.h>

enum pt_log_level {
    PT_LOG_DEBUG,
    PT_LOG_INFO,
    PT_LOG_NOTICE,
    PT_LOG_WARN,
    PT_LOG_ERR,
    PT_LOG_CRIT
};

extern int pt_log_level;

/* Opens <path> ("stderr" or a file, appended) at <level> as the error log.  Returns PT_OK,
 * or PT_ERROR with errno set and the previous log kept. */
int pt_log_open(const char *path, int level);

/* Reopens the current error log file (after logrotate moved it); nothing is done while the
 * file at its path is still the one written to.  The file is opened as files.h's
 * pt_file_open_append() opens it (no link planted by another user followed).  Returns PT_OK,
 * or PT_ERROR with errno set (pt_file_strerror() says why) and the old file kept. */
int pt_log_reopen(void);

/* pt_log_reopen() in the master when root: a file it creates is given to <owner>, the
 * workers' uid, so that they can reopen it after it; no other file is chowned. */
int pt_log_reopen_for(uid_t owner);

/* The path of the error log ("stderr" when none). */
const char *pt_log_path(void);

/* The fd the error log writes to, so the master can hand it to stderr of children. */
int pt_log_fd(void);

/* Parses a level name ("warn") into *<level>.  Returns PT_OK or PT_ERROR. */
int pt_log_level_parse(const char *name, int *level);

/* Writes one line at <level> if it passes the threshold.  Never fails visibly. */
void pt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pt_vlog(int level, const char *fmt, va_list ap);

/* Until the error log is opened (pt_log_open), lines go to stderr the way a command's
 * messages do, "portier: [warn] message", as nginx prints them at start and for -t. */
void pt_log_set_console(void);

/* Tag written after the pid on every line ("worker", "master", "helper"). */
void pt_log_set_role(const char *role);

#define pt_log_debug(...)                      \
    do {                                       \
        if (pt_log_level <= PT_LOG_DEBUG)      \
            pt_log(PT_LOG_DEBUG, __VA_ARGS__); \
    } while (0)

#endif
