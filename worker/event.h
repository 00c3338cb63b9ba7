/*
 * event.h: the worker's event loop: epoll (edge-triggered) for file descriptors and a
 * binary heap of timers.  One loop per process; handlers run to completion.
 */
#ifndef PT_EVENT_H
#define PT_EVENT_H

#include <stdint.h>

#include "core/pt.h"
#include "core/times.h" /* pt_now_ms(): the "now" timers count from */

#define PT_EV_READ  1u
#define PT_EV_WRITE 2u
#define PT_EV_ERROR 4u /* EPOLLERR or EPOLLHUP: the handler should read/write to learn why */
/* the peer closed its side: a read will end in EOF, even after a short one */
#define PT_EV_RDHUP 8u
/* not from epoll: the object asked to be called again (pt_event_post) */
#define PT_EV_POSTED 16u

struct pt_event;
typedef void (*pt_event_handler)(struct pt_event *ev, unsigned events);

/* A file descriptor watched by the loop.  Embed it in the object that owns the fd. */
struct pt_event {
    int fd;
    unsigned posted; /* beside fd: the struct has no padding (one per open connection) */
    pt_event_handler handler;
    void *data;
    struct pt_event *posted_next;
};

struct pt_timer;
typedef void (*pt_timer_handler)(struct pt_timer *t);

/* A one-shot timer.  Embed it; zero-initialised means "not armed". */
struct pt_timer {
    uint64_t when; /* ms on the monotonic clock */
    uint32_t slot; /* heap index + 1; 0 when not armed */
    pt_timer_handler handler;
    void *data;
};

/* Creates the loop.  Returns PT_OK or PT_ERROR (errno set). */
int pt_loop_init(void);

/* Registers <ev> for read and write readiness, edge-triggered, once for its lifetime
 * (so no epoll_ctl is needed per request).  <exclusive> sets EPOLLEXCLUSIVE (listeners
 * shared by several workers).  Returns PT_OK or PT_ERROR. */
int pt_event_add(struct pt_event *ev, int exclusive);
int pt_event_add_read(struct pt_event *ev, int exclusive);

/* Stops watching <ev> (before closing its fd, or to stop accepting). */
void pt_event_del(struct pt_event *ev);

/* Arms <t> to fire <ms> after pt_now_ms() (re-arming moves it).  pt_timer_del disarms it. */
void pt_timer_add(struct pt_timer *t, uint64_t ms);
void pt_timer_del(struct pt_timer *t);

static inline int pt_timer_armed(const struct pt_timer *t)
{
    return t->slot != 0;
}

/* Waits for events and runs their handlers, then the expired timers.  Returns after one
 * round; <max_wait_ms> bounds the wait (-1: until the next timer). */
void pt_loop_once(int max_wait_ms);

/* Calls <ev>'s handler with PT_EV_POSTED once the current handler has returned, in this
 * round of the loop.  Work that would otherwise recurse (the next pipelined request
 * started from the end of the previous one) goes through here, so the stack stays flat
 * however much a client sends.  Posting twice before the call is the same as once. */
void pt_event_post(struct pt_event *ev);

/* Calls <ev>'s handler with PT_EV_POSTED in the next round of the loop, after that round's
 * events (the loop does not sleep meanwhile): a connection that had its turn lets the
 * others have theirs (sendfile_max_chunk).  An event posted either way runs once. */
void pt_event_post_next(struct pt_event *ev);

/* Calls <fn>(<p>) after the current round of events: an object closed by one handler may
 * still be named by an event later in the same epoll batch, so it must stay readable (and
 * must not be reused) until then; its event's fd set to -1 makes the loop skip it. */
void pt_loop_defer(void (*fn)(void *), void *p);

/* pt_loop_defer(free, <p>). */
void pt_loop_defer_free(void *p);

/* Number of armed timers (used when draining). */
uint32_t pt_timer_count(void);

#endif
