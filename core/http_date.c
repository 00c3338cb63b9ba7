/*
 * http_date.c: HTTP-dates (RFC 9110 5.6.7), read in their three formats and written in the
 * one a sender uses, for the cache's freshness and the validators of responses and files.
 */
#include "core/http_date.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DAY 86400

static const char *const day_names[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const long_day_names[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                             "Friday", "Saturday", "Sunday"};
static const char *const month_names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

struct cursor {
    const char *p, *end;
};

struct civil {
    int year, mon, day, hour, min, sec; /* mon 1..12 */
};

/* Consumes <lit> at the cursor, case-insensitively (RFC 9111 4.2 asks caches to match dates
 * so, although HTTP-date is case-sensitive). */
static int lit(struct cursor *c, const char *lit)
{
    size_t n = strlen(lit);

    if ((size_t)(c->end - c->p) < n || strncasecmp(c->p, lit, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

/* Consumes one of the <count> <names>; returns its index, or -1. */
static int one_of(struct cursor *c, const char *const *names, int count)
{
    for (int i = 0; i < count; i++)
        if (lit(c, names[i]))
            return i;
    return -1;
}

/* Consumes exactly <n> digits into <*v>. */
static int digits(struct cursor *c, int n, int *v)
{
    if (c->end - c->p < n)
        return 0;
    *v = 0;
    for (int i = 0; i < n; i++, c->p++) {
        if (!isdigit((unsigned char)*c->p))
            return 0;
        *v = *v * 10 + (*c->p - '0');
    }
    return 1;
}

static int month(struct cursor *c, int *mon)
{
    *mon = one_of(c, month_names, 12) + 1;
    return *mon > 0;
}

static int time_of_day(struct cursor *c, struct civil *t)
{
    return digits(c, 2, &t->hour) && lit(c, ":") && digits(c, 2, &t->min) && lit(c, ":") &&
           digits(c, 2, &t->sec);
}

/* Days since 1970-01-01 of the proleptic Gregorian date <y>-<m>-<d> (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* The Gregorian year of the time <t> (the inverse of days_from_civil, year only). */
static int64_t year_of(time_t t)
{
    int64_t z = (t >= 0 ? t : t - (DAY - 1)) / DAY + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    return yoe + era * 400 + (mp >= 10); /* months 11 and 12 of a March-based year: Jan, Feb */
}

/* rfc850-date's two-digit <yy>: RFC 9110 5.6.7 reads one more than 50 years after <now> as
 * the most recent past year with the same last two digits. */
static int full_year(int yy, time_t now)
{
    int64_t y = year_of(now), candidate = y - y % 100 + yy;

    if (candidate > y + 50)
        candidate -= 100;
    else if (candidate + 100 <= y + 50)
        candidate += 100;
    return (int)candidate;
}

/* After the day name: ", " date1 SP time-of-day " GMT" (IMF-fixdate). */
static int imf_fixdate(struct cursor *c, struct civil *t)
{
    return lit(c, ", ") && digits(c, 2, &t->day) && lit(c, " ") && month(c, &t->mon) &&
           lit(c, " ") && digits(c, 4, &t->year) && lit(c, " ") && time_of_day(c, t) &&
           lit(c, " GMT");
}

/* After the long day name: ", " DD-Mon-YY SP time-of-day " GMT" (rfc850-date). */
static int rfc850_date(struct cursor *c, struct civil *t, time_t now)
{
    int yy;

    if (!(lit(c, ", ") && digits(c, 2, &t->day) && lit(c, "-") && month(c, &t->mon) &&
          lit(c, "-") && digits(c, 2, &yy) && lit(c, " ") && time_of_day(c, t) && lit(c, " GMT")))
        return 0;
    t->year = full_year(yy, now);
    return 1;
}

/* After the day name: SP Mon SP ( 2DIGIT / SP DIGIT ) SP time-of-day SP year (asctime). */
static int asctime_date(struct cursor *c, struct civil *t)
{
    if (!(lit(c, " ") && month(c, &t->mon) && lit(c, " ")))
        return 0;
    if (!(lit(c, " ") ? digits(c, 1, &t->day) : digits(c, 2, &t->day)))
        return 0;
    return lit(c, " ") && time_of_day(c, t) && lit(c, " ") && digits(c, 4, &t->year);
}

static int valid_civil(const struct civil *t)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (t->year % 4 == 0 && t->year % 100 != 0) || t->year % 400 == 0;
    int last = mdays[t->mon - 1] + (t->mon == 2 && leap);

    /* second 60: a leap second (RFC 9110 5.6.7) */
    return t->day >= 1 && t->day <= last && t->hour <= 23 && t->min <= 59 && t->sec <= 60;
}

time_t pt_http_parse_date(struct pt_str s, time_t now)
{
    struct cursor c;
    struct civil t;
    int64_t secs;
    int ok;

    if (s.p == NULL)
        return -1;
    c = (struct cursor){s.p, s.p + s.len};
    /* the long names first: "Mon" is a prefix of "Monday" */
    if (one_of(&c, long_day_names, 7) >= 0)
        ok = rfc850_date(&c, &t, now);
    else if (one_of(&c, day_names, 7) >= 0)
        ok = (c.p < c.end && *c.p == ',') ? imf_fixdate(&c, &t) : asctime_date(&c, &t);
    else
        ok = 0;
    if (!ok || c.p != c.end || !valid_civil(&t))
        return -1;
    secs = days_from_civil(t.year, t.mon, t.day) * DAY + t.hour * 3600 + t.min * 60 + t.sec;
    return secs < 0 ? 0 : (time_t)secs; /* before 1970: as old as it matters here */
}

size_t pt_http_format_date(time_t t, char *buf)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    return strftime(buf, PT_HTTP_DATE_LEN, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}
