/*
 * syslog.h: sending log lines to a syslog server, as nginx's "syslog:" targets do.
 *
 * A target is parsed once, at configuration time, from nginx's parameters
 * ("server=ADDR[:PORT]|unix:/path,facility=local7,severity=info,tag=nginx,nohostname"); its
 * address is resolved then, as nginx resolves it.  Each process opens its own non-blocking
 * datagram socket on first use; a line that cannot be sent at once is dropped, so that a dead
 * or slow syslog server never stalls a worker.
 */
#ifndef PT_SYSLOG_H
#define PT_SYSLOG_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* The longest tag nginx accepts. */
#define PT_SYSLOG_TAG_MAX 32

struct pt_syslog {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int facility; /* 0 (kern) .. 23 (local7) */
    int severity; /* 0 (emerg) .. 7 (debug) */
    char tag[PT_SYSLOG_TAG_MAX + 1];
    unsigned nohostname : 1;
    char server[128]; /* as written after server=, for messages */
    int fd;           /* -1 until the first line in this process */
    pid_t pid;        /* the process fd belongs to; another one opens its own */
};

/* Whether <value> names a syslog target ("syslog:..."). */
int pt_syslog_is_target(const char *value);

/* Parses the parameters of "syslog:<params>" (<params> without the prefix) into <s>, with
 * nginx's defaults: facility local7, severity <severity> (info for access_log), tag <tag>.
 * The server's address is resolved now.  Returns PT_OK, or PT_ERROR with what is wrong
 * written into <err> (<errlen> bytes), for the caller to prefix with file:line. */
int pt_syslog_parse(struct pt_syslog *s, const char *params, const char *tag, int severity,
                    char *err, size_t errlen);

/* Sends <msg> (<len> bytes, no newline) to <s> at <severity> (-1: the target's own), after
 * the header nginx's ngx_syslog_add_header writes: "<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: ".
 * Never blocks: returns PT_OK, or PT_ERROR with errno set when the line was dropped. */
int pt_syslog_send(struct pt_syslog *s, int severity, const char *msg, size_t len);

/* Closes the socket of <s> if this process opened one. */
void pt_syslog_close(struct pt_syslog *s);

#endif
