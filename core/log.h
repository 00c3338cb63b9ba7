/*
 * log.h: the error log.  One file, stderr or syslog target per process, a level threshold,
 * and a reopen for USR1.  Lines read "2026/11/22 18:00:00 [warn] 1234 worker: message", or
 * are one JSON object each ({"time": ..., "level": ..., "pid": ..., "message": ...}).  To
 * syslog, each line goes after nginx's syslog header, at the severity of its level.
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

struct pt_syslog;

/* Opens <path> ("stderr", a file appended, or "syslog:..." with <sl> its target as the
 * configuration parsed it; copied) at <level> as the error log, its lines in JSON when
 * <json>.  Returns PT_OK, or PT_ERROR with errno set and the previous log kept. */
int pt_log_open(const char *path, const struct pt_syslog *sl, int level, int json);

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

/* What a line about a request adds to its message, as nginx's error lines name it; NULL
 * members are left out (client and server are always written). */
struct pt_log_request {
    const char *client;
    const char *server;
    const char *request; /* the request line, escaped */
    const char *host;    /* the Host header, escaped */
};

/* Writes <msg> at <level> about the request <rq>: in text, "<msg>, client: C, server: S,
 * request: "R", host: "H"" as nginx writes it; in JSON, members of their own. */
void pt_log_request(int level, const struct pt_log_request *rq, const char *msg);

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
