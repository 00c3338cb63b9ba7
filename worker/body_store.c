/*
 * body_store.c: a request body read ahead of the content handler and kept for it.
 *
 * Bodies normally stream from the client to the upstream through a bounded buffer and are
 * never kept.  A module that must judge a body before any of it goes on (the waf: the
 * rules see the body, then the request is let through or refused) reads it ahead with
 * pt_http_body_read_ahead; what it read is kept here, the first client_body_buffer_size
 * bytes in memory and the rest in an unnamed temporary file, and pt_http_body_peek hands
 * it out again before the client's next bytes, so the content handler reads one body
 * whichever way it came.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/pool.h"
#include "worker/http.h"
#include "worker/http_req.h"

/* How much of the file one peek hands out. */
#define READ_BACK 65536

struct pt_body_store {
    char *mem; /* the first bytes, client_body_buffer_size at most */
    size_t mem_len, mem_cap;
    int fd;           /* the rest; -1: none yet */
    int64_t size;     /* bytes kept, memory and file */
    int64_t pos;      /* bytes handed out again */
    char *back;       /* READ_BACK bytes: a piece of the file being handed out */
    size_t back_off;  /* where <pos> is in it */
    size_t back_len;  /* its length */
    unsigned all : 1; /* the whole body is kept: the client has nothing more */
};

static void close_store(void *arg)
{
    struct pt_body_store *s = arg;

    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

/* An unnamed file in <dir>: O_TMPFILE where the file system has it, else a named one
 * removed at once.  -1 with errno. */
static int temp_file(const char *dir)
{
    char path[4096];
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    if ((size_t)snprintf(path, sizeof(path), "%s/portier-body-XXXXXX", dir) >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if ((fd = mkostemp(path, O_CLOEXEC)) >= 0)
        unlink(path);
    return fd;
}

/* Writes all of <p>/<n> to <fd> at its end.  PT_OK or PT_ERROR with errno. */
static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return PT_ERROR;
        p += w;
        n -= (size_t)w;
    }
    return PT_OK;
}

/* Keeps <p>/<n> in r's store, made on first use.  PT_OK or PT_ERROR (logged). */
static int keep(struct pt_request *r, const char *p, size_t n)
{
    struct pt_http_loc_conf *lc = r->loc_conf[pt_http_module.index];
    struct pt_body_store *s = r->kept;
    size_t room;

    if (s == NULL) {
        s = pt_palloc(r->pool, sizeof(*s));
        if (s == NULL)
            return PT_ERROR;
        s->fd = -1;
        s->mem_cap = (size_t)lc->client_body_buffer_size;
        if ((s->mem = pt_pnalloc(r->pool, s->mem_cap)) == NULL ||
            pt_pool_cleanup(r->pool, close_store, s) != PT_OK)
            return PT_ERROR;
        r->kept = s;
    }
    room = s->fd < 0 ? s->mem_cap - s->mem_len : 0;
    if (room > n)
        room = n;
    if (room) {
        memcpy(s->mem + s->mem_len, p, room);
        s->mem_len += room;
    }
    s->size += (int64_t)n;
    if (room == n)
        return PT_OK;
    if (s->fd < 0 && (s->fd = temp_file(lc->client_body_temp_path)) < 0) {
        pt_log(PT_LOG_CRIT, "cannot create a temporary file for a request body in \"%s\": %s",
               lc->client_body_temp_path, strerror(errno));
        return PT_ERROR;
    }
    if (write_all(s->fd, p + room, n - room) != PT_OK) {
        pt_log(PT_LOG_CRIT, "cannot write a request body to a temporary file in \"%s\": %s",
               lc->client_body_temp_path, strerror(errno));
        return PT_ERROR;
    }
    return PT_OK;
}

/* More of the body came in: the phase handler that read ahead goes on. */
static void body_readable(struct pt_request *r)
{
    r->read_handler = NULL;
    pt_http_run_phases(r);
}

int pt_http_body_read_ahead(struct pt_request *r, pt_body_sink sink)
{
    for (;;) {
        struct pt_str d;
        int last = 0, rc;
        if (!r->has_body || (r->kept && r->kept->all))
            return PT_OK;
        rc = pt_http_body_peek_from_client(r, &d, &last);
        if (rc == PT_AGAIN)
            r->read_handler = body_readable;
        if (rc != PT_OK)
            return rc;
        if (d.len == 0 && !last) {
            r->read_handler = body_readable;
            return PT_AGAIN;
        }
        if (keep(r, d.p, d.len) != PT_OK)
            return PT_ERROR;
        if (last)
            r->kept->all = 1;
        rc = sink(r, d.p, d.len, last);
        /* Consumed only now: the store, not the client, serves the next peek otherwise. */
        pt_http_body_consumed_from_client(r, d.len);
        if (rc == PT_DONE)
            return PT_OK;
        if (rc != PT_OK)
            return rc;
    }
}

int pt_body_store_peek(struct pt_request *r, struct pt_str *data, int *last)
{
    struct pt_body_store *s = r->kept;

    if (s == NULL || s->pos >= s->size)
        return PT_DECLINED;
    if (s->pos < (int64_t)s->mem_len) {
        *data = (struct pt_str){s->mem + s->pos, s->mem_len - (size_t)s->pos};
    } else {
        if (s->back_off == s->back_len) {
            int64_t off = s->pos - (int64_t)s->mem_len;
            ssize_t n;
            if (s->back == NULL && (s->back = pt_pnalloc(r->pool, READ_BACK)) == NULL)
                return PT_ERROR;
            do
                n = pread(s->fd, s->back, READ_BACK, off);
            while (n < 0 && errno == EINTR);
            if (n <= 0) {
                pt_log(PT_LOG_CRIT, "cannot read a request body back from its temporary file: %s",
                       n < 0 ? strerror(errno) : "it is shorter than written");
                return PT_ERROR;
            }
            s->back_off = 0;
            s->back_len = (size_t)n;
        }
        *data = (struct pt_str){s->back + s->back_off, s->back_len - s->back_off};
    }
    *last = s->all && s->pos + (int64_t)data->len == s->size;
    return PT_OK;
}

int pt_body_store_consumed(struct pt_request *r, size_t n)
{
    struct pt_body_store *s = r->kept;

    if (s == NULL || s->pos >= s->size)
        return 0;
    if (s->pos >= (int64_t)s->mem_len)
        s->back_off += n;
    s->pos += (int64_t)n;
    return 1;
}
