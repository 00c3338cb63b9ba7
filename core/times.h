/*
 * times.h: the one clock of every process (nginx's ngx_times.c).  Nothing outside times.c
 * reads a system clock: pt_time_update() reads the monotonic and the wall clock and caches
 * them, and everyone else reads the cache.  The event loop updates it after every wait
 * (workers and the helper), the master at start and after every signal.  So the handlers of
 * one round agree on "now", and asking for it costs nothing.
 *
 * Named times.h, not time.h: with the flat include path a core/time.h would stand in for
 * the system's <time.h>.
 */
#ifndef PT_TIMES_H
#define PT_TIMES_H

#include <stdint.h>
#include <time.h>

#include "core/pt.h"

/* Reads the clocks into the cache.  Called by the loop after each wait and by the master
 * after each signal; the first read of a process that has not called it yet calls it. */
void pt_time_update(void);

/* Milliseconds on CLOCK_MONOTONIC as of the last pt_time_update().  The clock is the same
 * in every process, so values kept in shared memory by one are compared by another; one
 * written by a process that updated later may be ahead of the reader's. */
uint64_t pt_now_ms(void);

/* Wall-clock milliseconds since the epoch as of the last pt_time_update(). */
int64_t pt_time_wall_ms(void);

/* Wall-clock seconds since the epoch as of the last pt_time_update(). */
time_t pt_time_sec(void);

/* The cached wall-clock second as an HTTP date (RFC 9110 IMF-fixdate, "Sun, 06 Nov 1994
 * 08:49:37 GMT").  The slice points into a static buffer rewritten when the second changes:
 * copy it to keep it past the current round. */
struct pt_str pt_http_date(void);

#endif
