/*
 * listen.h: listening sockets.  The master binds them (or takes them over from the
 * previous generation or an inherited fd); workers accept on them.  A socket whose
 * address is unchanged across a reload is reused, never closed and rebound: closing a
 * listener would drop its accept backlog with RSTs.
 */
#ifndef PT_LISTEN_H
#define PT_LISTEN_H

#include <sys/socket.h>

#include "worker/event.h"
#include "core/pt.h"

struct pt_listen {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char text[64]; /* "127.0.0.1:8080", "[::1]:8080" */
    int fd;        /* -1 until opened */
    int backlog;
    unsigned reuseport : 1;
    unsigned ipv6only : 1;
    unsigned ssl : 1;       /* connections start with a TLS handshake (the ssl module) */
    unsigned taken : 1;     /* fd handed to a newer generation: do not close it here */
    struct pt_listen *from; /* the older generation's listener whose fd this one took */
    void *servers;          /* the http core's routing table for this address */
    struct pt_event ev;     /* the worker's accept event */
    struct pt_listen *next;
};

/* Parses "[addr:]port" or "[v6]:port" or "unix:..."-free forms into <ls> (port only means
 * 0.0.0.0).  Returns PT_OK or PT_ERROR. */
int pt_listen_parse_addr(const char *s, struct pt_listen *ls);

/* Opens every listener of the list <head>: takes the fd of an address-equal listener in
 * <old> (marking it taken) or in the inherited fd list, else socket+bind+listen.  On error
 * writes a message into <err>, undoes what it did (fds taken from <old> go back to it, new
 * ones are closed) and returns PT_ERROR. */
int pt_listen_open_all(struct pt_listen *head, struct pt_listen *old, char *err, size_t errlen);

/* Undoes pt_listen_open_all for <head> after a later step of a reload failed: fds taken
 * from the older generation go back to it, the others are closed. */
void pt_listen_undo(struct pt_listen *head);

/* Closes the fds of <head> that were not taken over by a newer generation. */
void pt_listen_close_all(struct pt_listen *head);

/* Records fds inherited from a previous binary (PORTIER_INHERIT) or from systemd
 * (LISTEN_FDS) so that pt_listen_open_all adopts them for matching addresses. */
void pt_listen_inherit_from_env(void);

/* Formats the address of <sa> into <buf> as "ip:port". */
void pt_sockaddr_text(const struct sockaddr *sa, char *buf, size_t len);

#endif
