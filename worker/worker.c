/*
 * worker.c: a worker process: it watches the listeners, serves connections on its event
 * loop, gives back memory after bursts, and drains gracefully on QUIT.  (Its start, shared
 * with the helper, is in process.c; the helper's loop in helper.c.)
 */
#include "worker/worker.h"

#ifdef PT_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
/* MALLCTL_ARENAS_ALL spelled into the control's name: "arena.4096.purge". */
#define STR_(x) #x
#define STR(x)  STR_(x)
#elif defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdlib.h>
#include <unistd.h>

#include "config/core_module.h"
#include "core/buf.h"
#include "core/files.h"
#include "core/log.h"
#include "core/module.h"
#include "worker/event.h"
#include "worker/http.h"
#include "worker/listen.h"
#include "worker/process.h"

int pt_worker_respawned;

static int listen_all(struct pt_cycle *cycle)
{
    for (struct pt_listen *ls = cycle->listens; ls; ls = ls->next) {
        ls->ev.fd = ls->fd;
        ls->ev.handler = pt_http_accept;
        ls->ev.data = ls;
        /* EPOLLEXCLUSIVE: one worker is woken per new connection, not all of them. */
        if (pt_event_add_read(&ls->ev, 1) != PT_OK) {
            pt_log(PT_LOG_CRIT, "cannot watch %s: %m", ls->text);
            return PT_ERROR;
        }
    }
    return PT_OK;
}

static void stop_accepting(struct pt_cycle *cycle)
{
    for (struct pt_listen *ls = cycle->listens; ls; ls = ls->next) {
        if (ls->fd < 0)
            continue;
        pt_event_del(&ls->ev);
        close(ls->fd);
        ls->fd = -1;
    }
}

/* How often a worker looks whether a burst of requests left it holding memory it no
 * longer uses. */
#define TRIM_INTERVAL_MS 2000
#define TRIM_MIN_BYTES   (1024 * 1024)

/* Gives back what a past burst took: the I/O buffers that sat unused on the free list for
 * a whole interval, then the allocator's free pages (glibc's inside the heap, jemalloc's
 * dirty pages).  malloc keeps freed
 * chunks resident when anything still lives above them, so without malloc_trim the
 * requests' buffers and pools of a burst stay in the worker's RSS for good.  Only called
 * when buffers were surplus, which is when the heap has free pages worth the walk. */
static void trim_memory(void)
{
    static uint64_t next;

    if (pt_now_ms() < next)
        return;
    next = pt_now_ms() + TRIM_INTERVAL_MS;
    /* Less than a MiB of buffers back is not worth a walk of the whole heap, which
     * holds up the loop while it runs. */
    if (pt_buf_trim() < TRIM_MIN_BYTES)
        return;
#ifdef PT_HAVE_JEMALLOC
    /* jemalloc's own way: its arenas' dirty pages back to the system now. */
    mallctl("arena." STR(MALLCTL_ARENAS_ALL) ".purge", NULL, NULL, NULL, 0);
#elif defined(__GLIBC__)
    malloc_trim(0);
#endif
}

static void exit_modules(struct pt_cycle *cycle)
{
    for (int i = 0; pt_modules[i]; i++)
        if (pt_modules[i]->exit_worker)
            pt_modules[i]->exit_worker(cycle);
}

void pt_worker_main(struct pt_cycle *cycle, int slot)
{
    struct pt_core_conf *cc = pt_core_conf(cycle);
    uint64_t deadline = 0;

    pt_process_start(cycle, "worker", "portier: worker process");
    if (listen_all(cycle) != PT_OK)
        _exit(PT_EXIT_FATAL);
    for (int i = 0; pt_modules[i]; i++) {
        if (pt_modules[i]->init_worker && pt_modules[i]->init_worker(cycle) != PT_OK) {
            pt_log(PT_LOG_CRIT, "module %s failed to start in worker %d", pt_modules[i]->name,
                   slot);
            _exit(PT_EXIT_FATAL);
        }
    }
    for (;;) {
        /* A draining worker looks often whether its last connection is gone: an old
         * generation should not outlive its work by a whole wait. */
        pt_loop_once(deadline ? 20 : 1000);
        if (pt_sig_term)
            break;
        trim_memory();
        if (pt_sig_reopen) {
            pt_sig_reopen = 0;
            pt_log_reopen();
            pt_files_reopen(cycle, (uid_t)-1);
        }
        if (pt_sig_quit && deadline == 0) {
            pt_log(PT_LOG_NOTICE, "gracefully shutting down");
            stop_accepting(cycle);
            pt_http_drain();
            deadline = pt_now_ms() + (uint64_t)cc->worker_shutdown_timeout;
        }
        if (deadline && pt_http_conn_count() == 0)
            break;
        if (deadline && pt_now_ms() >= deadline) {
            pt_log(PT_LOG_WARN, "worker_shutdown_timeout: closing %u connections",
                   pt_http_conn_count());
            break;
        }
    }
    exit_modules(cycle);
    /* A fast stop (TERM: shutdown, or a draining generation ended early) leaves at once;
     * the exit handlers (a sanitizer's leak scan, say) belong to graceful exits. */
    if (pt_sig_term)
        _exit(0);
    exit(0);
}
