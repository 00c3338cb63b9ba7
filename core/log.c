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
#include "core/syslog.h"
#include "core/times.h"

int pt_log_level = PT_LOG_NOTICE;

static int log_fd = 2;
static char log_path[4096] = "stderr";
static const char *log_role = "master";
static int console; /* stderr before the error log is open: "portier: [level] message" */
static int log_json;
static int to_syslog; /* log_syslog is the error log (log_fd stays stderr) */
static struct pt_syslog log_syslog;

static const char *const level_names[] = {"debug", "info", "notice", "warn", "error", "crit"};

/* The syslog severity of each level, as nginx's ngx_syslog_writer takes it (level - 1). */
static const int level_severities[] = {7, 6, 5, 4, 3, 2};

/* A line being built, bounded: what does not fit is cut. */
struct line {
    char *p;
    size_t n, cap;
};

/* Opens the error log <path>, a file being given to <owner> if created (files.h). */
static int open_path(const char *path, uid_t owner)
{
    if (strcmp(path, "stderr") == 0)
        return 2;
    return pt_file_open_append(path, owner, NULL);
}

int pt_log_open(const char *path, const struct pt_syslog *sl, int level, int json)
{
    int fd = sl ? 2 : open_path(path, (uid_t)-1);

    if (fd < 0)
        return PT_ERROR;
    if (log_fd > 2)
        close(log_fd);
    if (to_syslog)
        pt_syslog_close(&log_syslog);
    log_fd = fd;
    to_syslog = sl != NULL;
    if (sl) {
        log_syslog = *sl;
        log_syslog.fd = -1;
    }
    snprintf(log_path, sizeof(log_path), "%s", path);
    pt_log_level = level;
    log_json = json;
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

    /* A syslog server has nothing to reopen. */
    if (to_syslog)
        return PT_OK;
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

static void put(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct line *l, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (l->n >= l->cap)
        return;
    va_start(ap, fmt);
    k = vsnprintf(l->p + l->n, l->cap - l->n, fmt, ap);
    va_end(ap);
    l->n = k < 0 ? l->n : l->n + (size_t)k < l->cap ? l->n + (size_t)k : l->cap - 1;
}

/* Appends ,"<name>":"<value>" (or the value alone when <name> is NULL), escaped as nginx's
 * escape=json escapes: quote, backslash and control characters; other bytes as they are.
 * A value cut short still closes its quote, so that the line stays one JSON object. */
static void put_json(struct line *l, const char *name, const char *value)
{
    if (name)
        put(l, ",\"%s\":", name);
    if (l->n + 2 > l->cap)
        return;
    l->p[l->n++] = '"';
    for (const unsigned char *c = (const unsigned char *)value; *c; c++) {
        char seq[8];
        size_t k = 1;

        seq[0] = (char)*c;
        if (*c == '"' || *c == '\\')
            k = (size_t)snprintf(seq, sizeof(seq), "\\%c", *c);
        else if (*c == '\n')
            k = (size_t)snprintf(seq, sizeof(seq), "\\n");
        else if (*c < 0x20)
            k = (size_t)snprintf(seq, sizeof(seq), "\\u%04x", *c);
        if (l->n + k + 2 > l->cap)
            break;
        memcpy(l->p + l->n, seq, k);
        l->n += k;
    }
    l->p[l->n++] = '"';
    l->p[l->n] = '\0';
}

/* {"time":"2026-11-22T18:00:00+01:00","level":"warn","pid":1234,"process":"worker",
 * "message":"...", then the request's members when there is one. */
static void format_json(struct line *l, const struct tm *tm, int level,
                        const struct pt_log_request *rq, const char *msg)
{
    char t[64];
    size_t k = strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S%z", tm);

    /* ISO 8601 writes the offset as +01:00, as $time_iso8601 does. */
    if (k >= 5 && k + 2 < sizeof(t)) {
        memmove(t + k - 1, t + k - 2, 3);
        t[k - 2] = ':';
    }
    put(l, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%d", t, level_names[level], (int)getpid());
    put_json(l, "process", log_role);
    put_json(l, "message", msg);
    if (rq) {
        put_json(l, "client", rq->client);
        put_json(l, "server", rq->server);
        if (rq->request)
            put_json(l, "request", rq->request);
        if (rq->host)
            put_json(l, "host", rq->host);
    }
    l->p[l->n++] = '}'; /* room kept by emit() */
    l->p[l->n] = '\0';
}

/* "<msg>, client: C, server: S, request: "R", host: "H"", nginx's words. */
static void format_text(struct line *l, const struct pt_log_request *rq, const char *msg)
{
    put(l, "%s", msg);
    if (rq == NULL)
        return;
    put(l, ", client: %s, server: %s", rq->client, rq->server);
    if (rq->request)
        put(l, ", request: \"%s\"", rq->request);
    if (rq->host)
        put(l, ", host: \"%s\"", rq->host);
}

/* Writes the line for <msg> at <level> (about <rq> when not NULL) to the error log. */
static void emit(int level, const struct pt_log_request *rq, const char *msg)
{
    char buf[4096];
    /* Text lines are cut at 2048 bytes as nginx's are; JSON keeps room for its "}". */
    struct line l = {buf, 0, console || !log_json ? 2048 : sizeof(buf) - 2};
    time_t now = pt_time_sec();
    struct tm tm;
    int saved = errno;

    buf[0] = '\0';
    localtime_r(&now, &tm);
    if (console) {
        put(&l, "portier: [%s] ", level_names[level]);
        format_text(&l, rq, msg);
    } else if (log_json) {
        format_json(&l, &tm, level, rq, msg);
    } else {
        l.n = strftime(buf, l.cap, "%Y/%m/%d %H:%M:%S", &tm);
        put(&l, " [%s] %d %s: ", level_names[level], (int)getpid(), log_role);
        format_text(&l, rq, msg);
    }
    /* nginx sends a syslog line without its newline, at the severity of its level. */
    if (to_syslog && !console) {
        pt_syslog_send(&log_syslog, level_severities[level], buf, l.n);
        errno = saved;
        return;
    }
    buf[l.n++] = '\n';
    /* One write per line so that lines from several processes never interleave. */
    if (write(log_fd, buf, l.n) < 0) {
        /* nowhere left to report it */
    }
    errno = saved;
}

void pt_vlog(int level, const char *fmt, va_list ap)
{
    char msg[2048];
    int saved = errno;

    if (level < pt_log_level)
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    errno = saved;
    emit(level, NULL, msg);
}

void pt_log_request(int level, const struct pt_log_request *rq, const char *msg)
{
    if (level >= pt_log_level)
        emit(level, rq, msg);
}

void pt_log(int level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pt_vlog(level, fmt, ap);
    va_end(ap);
}
