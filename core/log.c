/* log.c: the error log. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* dup3; CMake defines it for the whole build */
#endif
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/files.h"
#include "core/pt.h"
#include "core/times.h"

int pt_log_level = PT_LOG_NOTICE;

static int log_fd = 2;
static char log_path[4096] = "stderr";
static const char *log_role = "master";
static int console; /* stderr before the error log is open: "portier: [level] message" */

static const char *const level_names[] = {"debug", "info", "notice", "warn", "error", "crit"};

/* Opens the error log <path>, a file being given to <owner> if created (files.h). */
static int open_path(const char *path, uid_t owner)
{
    if (strcmp(path, "stderr") == 0)
        return 2;
    return pt_file_open_append(path, owner, NULL);
}

int pt_log_open(const char *path, int level)
{
    int fd = open_path(path, (uid_t)-1);

    if (fd < 0)
        return PT_ERROR;
    if (log_fd > 2)
        close(log_fd);
    log_fd = fd;
    snprintf(log_path, sizeof(log_path), "%s", path);
    pt_log_level = level;
    console = 0;
    return PT_OK;
}

int pt_log_reopen(void)
{
    return pt_log_reopen_for((uid_t)-1);
}

int pt_log_reopen_for(uid_t owner)
{
    int fd;

    /* Not rotated: nothing to do (and a worker need not be able to open it by name). */
    if (log_fd > 2 && pt_file_unchanged(log_fd, log_path))
        return PT_OK;
    fd = open_path(log_path, owner);
    if (fd < 0)
        return PT_ERROR;
    if (fd == log_fd)
        return PT_OK;
    /* dup3 keeps the descriptor number stable for anyone who inherited it, and
     * close-on-exec on it (dup2 would clear it: a binary upgrade would inherit it). */
    if (log_fd > 2) {
        dup3(fd, log_fd, O_CLOEXEC);
        close(fd);
    } else {
        log_fd = fd;
    }
    return PT_OK;
}

const char *pt_log_path(void)
{
    return log_path;
}

int pt_log_fd(void)
{
    return log_fd;
}

int pt_log_level_parse(const char *name, int *level)
{
    for (size_t i = 0; i < pt_nelems(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (int)i;
            return PT_OK;
        }
    }
    if (strcmp(name, "err") == 0) {
        *level = PT_LOG_ERR;
        return PT_OK;
    }
    return PT_ERROR;
}

void pt_log_set_console(void)
{
    console = 1;
}

void pt_log_set_role(const char *role)
{
    log_role = role;
}

void pt_vlog(int level, const char *fmt, va_list ap)
{
    char line[2048];
    struct tm tm;
    time_t now = pt_time_sec();
    int saved = errno;
    size_t n;

    if (level < pt_log_level)
        return;
    if (console) {
        n = (size_t)snprintf(line, sizeof(line), "portier: [%s] ", level_names[level]);
    } else {
        localtime_r(&now, &tm);
        n = strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, " [%s] %d %s: ", level_names[level],
                              (int)getpid(), log_role);
    }
    if (n < sizeof(line))
        n += (size_t)vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line so that lines from several processes never interleave. */
    if (write(log_fd, line, n) < 0) {
        /* nowhere left to report it */
    }
    errno = saved;
}

void pt_log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pt_vlog(level, fmt, ap);
    va_end(ap);
}
