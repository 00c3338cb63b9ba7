/* times.c: the one clock, read once per round of a loop and cached. */
#include "core/times.h"

static uint64_t now_ms;
static int64_t wall_ms;

void pt_time_update(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    clock_gettime(CLOCK_REALTIME, &ts);
    wall_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A process reads the clocks itself the first time it asks, so that no reader ever sees
 * the epoch; after that it sees the time of its last update. */
static void ensure_read(void)
{
    if (now_ms == 0)
        pt_time_update();
}

uint64_t pt_now_ms(void)
{
    ensure_read();
    return now_ms;
}

int64_t pt_time_wall_ms(void)
{
    ensure_read();
    return wall_ms;
}

time_t pt_time_sec(void)
{
    return (time_t)(pt_time_wall_ms() / 1000);
}

struct pt_str pt_http_date(void)
{
    static char buf[40];
    static size_t len;
    static time_t cached = -1;
    time_t now = pt_time_sec();

    /* Formatted once per second: every response asks for it. */
    if (now != cached) {
        struct tm tm;
        gmtime_r(&now, &tm);
        len = strftime(buf, sizeof(buf), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached = now;
    }
    return (struct pt_str){buf, len};
}
