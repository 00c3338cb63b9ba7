/* event.c: epoll and a timer heap. */
#include "worker/event.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/log.h"
#include "core/times.h"

#define MAX_EVENTS 512

static int epfd = -1;
static struct pt_timer **heap;
static uint32_t heap_len, heap_cap;
static struct pt_event *posted_head, *posted_tail;
/* Posted for the next round (ev->posted is 2): they run after its events. */
static struct pt_event *next_head, *next_tail;
struct deferred {
    void (*fn)(void *);
    void *p;
};
static struct deferred *deferred;
static size_t deferred_len, deferred_cap;

void pt_loop_defer(void (*fn)(void *), void *p)
{
    if (deferred_len == deferred_cap) {
        size_t cap = deferred_cap ? deferred_cap * 2 : 256;
        struct deferred *d = realloc(deferred, cap * sizeof(*d));
        if (d == NULL) {
            /* Leaking beats a use-after-free. */
            return;
        }
        deferred = d;
        deferred_cap = cap;
    }
    deferred[deferred_len++] = (struct deferred){fn, p};
}

void pt_loop_defer_free(void *p)
{
    pt_loop_defer(free, p);
}

/* Appends <ev> to the list *<head> .. *<tail>, marking it <mark> (1: this round, 2: the
 * next), unless it is posted already. */
static void post_to(struct pt_event **head, struct pt_event **tail, struct pt_event *ev,
                    unsigned mark)
{
    if (ev->posted)
        return;
    ev->posted = mark;
    ev->posted_next = NULL;
    if (*tail)
        (*tail)->posted_next = ev;
    else
        *head = ev;
    *tail = ev;
}

void pt_event_post(struct pt_event *ev)
{
    post_to(&posted_head, &posted_tail, ev, 1);
}

void pt_event_post_next(struct pt_event *ev)
{
    post_to(&next_head, &next_tail, ev, 2);
}

static void run_posted(void)
{
    while (posted_head) {
        struct pt_event *ev = posted_head;
        posted_head = ev->posted_next;
        if (posted_head == NULL)
            posted_tail = NULL;
        ev->posted = 0;
        /* Closed since it was posted: its memory waits for run_deferred(). */
        if (ev->fd >= 0)
            ev->handler(ev, PT_EV_POSTED);
    }
}

static void run_deferred(void)
{
    for (size_t i = 0; i < deferred_len; i++)
        deferred[i].fn(deferred[i].p);
    deferred_len = 0;
}

int pt_loop_init(void)
{
    if (epfd >= 0)
        close(epfd);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    pt_time_update();
    return epfd < 0 ? PT_ERROR : PT_OK;
}

static int event_add(struct pt_event *ev, uint32_t what, int exclusive)
{
    struct epoll_event ee = {.events = what, .data.ptr = ev};

    /* EPOLLEXCLUSIVE accepts no other flag but EPOLLIN/EPOLLOUT/EPOLLET. */
    if (exclusive)
        ee.events |= EPOLLEXCLUSIVE;
    else
        ee.events |= EPOLLET | EPOLLRDHUP;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, ev->fd, &ee) == 0 ? PT_OK : PT_ERROR;
}

int pt_event_add(struct pt_event *ev, int exclusive)
{
    return event_add(ev, EPOLLIN | EPOLLOUT, exclusive);
}

int pt_event_add_read(struct pt_event *ev, int exclusive)
{
    return event_add(ev, EPOLLIN, exclusive);
}

void pt_event_del(struct pt_event *ev)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, ev->fd, NULL);
    /* Its memory may be gone by the next round: it leaves that list now.  (One posted for
     * this round is skipped by its fd, and freed only after it.) */
    if (ev->posted == 2) {
        struct pt_event **pp = &next_head, *prev = NULL;
        while (*pp != ev)
            prev = *pp, pp = &(*pp)->posted_next;
        *pp = ev->posted_next;
        if (next_tail == ev)
            next_tail = prev;
        ev->posted = 0;
    }
}

/* --- timers: a binary min-heap on <when>; each timer knows its slot for O(log n) moves --- */

static void heap_set(uint32_t i, struct pt_timer *t)
{
    heap[i] = t;
    t->slot = i + 1;
}

static void sift_up(uint32_t i)
{
    struct pt_timer *t = heap[i];

    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (heap[parent]->when <= t->when)
            break;
        heap_set(i, heap[parent]);
        i = parent;
    }
    heap_set(i, t);
}

static void sift_down(uint32_t i)
{
    struct pt_timer *t = heap[i];

    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= heap_len)
            break;
        if (c + 1 < heap_len && heap[c + 1]->when < heap[c]->when)
            c++;
        if (heap[c]->when >= t->when)
            break;
        heap_set(i, heap[c]);
        i = c;
    }
    heap_set(i, t);
}

void pt_timer_del(struct pt_timer *t)
{
    uint32_t i;

    if (t->slot == 0)
        return;
    i = t->slot - 1;
    t->slot = 0;
    heap_len--;
    if (i == heap_len)
        return;
    heap_set(i, heap[heap_len]);
    sift_down(i);
    sift_up(heap[i]->slot - 1);
}

void pt_timer_add(struct pt_timer *t, uint64_t ms)
{
    uint64_t when = pt_now_ms() + ms;

    if (t->slot) {
        /* Re-arming to a later time is the common case (activity on a connection), and
         * sift_down handles it without removing the timer. */
        uint64_t old = t->when;
        t->when = when;
        if (when >= old)
            sift_down(t->slot - 1);
        else
            sift_up(t->slot - 1);
        return;
    }
    if (heap_len == heap_cap) {
        uint32_t cap = heap_cap ? heap_cap * 2 : 1024;
        struct pt_timer **h = realloc(heap, cap * sizeof(*h));
        if (h == NULL) {
            pt_log(PT_LOG_CRIT, "out of memory for timers");
            return;
        }
        heap = h;
        heap_cap = cap;
    }
    t->when = when;
    heap_set(heap_len++, t);
    sift_up(heap_len - 1);
}

uint32_t pt_timer_count(void)
{
    return heap_len;
}

static int next_timeout(int max_wait_ms)
{
    uint64_t d;

    if (heap_len == 0)
        return max_wait_ms;
    d = heap[0]->when > pt_now_ms() ? heap[0]->when - pt_now_ms() : 0;
    if (max_wait_ms >= 0 && d > (uint64_t)max_wait_ms)
        return max_wait_ms;
    return d > 86400000 ? 86400000 : (int)d;
}

static void run_timers(void)
{
    while (heap_len && heap[0]->when <= pt_now_ms()) {
        struct pt_timer *t = heap[0];
        pt_timer_del(t);
        t->handler(t);
    }
}

void pt_loop_once(int max_wait_ms)
{
    struct epoll_event events[MAX_EVENTS];
    sigset_t empty;
    int n;

    /* Signals are blocked everywhere else and let in only while we wait, so a signal can
     * never slip in between checking the flags and going to sleep. */
    int wait = next_head ? 0 : next_timeout(max_wait_ms);

    /* What was posted for this round runs after its events, and is no reason to sleep. */
    for (struct pt_event *ev = next_head; ev; ev = ev->posted_next)
        ev->posted = 1;
    if (next_head) {
        if (posted_tail)
            posted_tail->posted_next = next_head;
        else
            posted_head = next_head;
        posted_tail = next_tail;
        next_head = next_tail = NULL;
    }
    sigemptyset(&empty);
    n = epoll_pwait(epfd, events, MAX_EVENTS, wait, &empty);

    pt_time_update();
    if (n < 0 && errno != EINTR)
        pt_log(PT_LOG_ERR, "epoll_pwait() failed: %m");
    for (int i = 0; i < n; i++) {
        struct pt_event *ev = events[i].data.ptr;
        uint32_t e = events[i].events;
        unsigned what = 0;

        if (ev->fd < 0)
            continue;

        if (e & (EPOLLIN | EPOLLRDHUP))
            what |= PT_EV_READ;
        if (e & EPOLLRDHUP)
            what |= PT_EV_RDHUP;
        if (e & EPOLLOUT)
            what |= PT_EV_WRITE;
        if (e & (EPOLLERR | EPOLLHUP))
            what |= PT_EV_ERROR | PT_EV_READ | PT_EV_WRITE;
        ev->handler(ev, what);
    }
    run_posted();
    run_timers();
    run_posted();
    run_deferred();
}
