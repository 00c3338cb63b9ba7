/*
 * http_date.h: HTTP-dates (RFC 9110 5.6.7).
 */
#ifndef PT_HTTP_DATE_H
#define PT_HTTP_DATE_H

#include <stddef.h>
#include <time.h>

#include "core/pt.h"

/* Room for a formatted HTTP-date and its NUL ("Sun, 06 Nov 1994 08:49:37 GMT"). */
#define PT_HTTP_DATE_LEN 32

/*
 * Parses the HTTP-date <s> in any of its three formats (RFC 9110 5.6.7: IMF-fixdate,
 * rfc850-date, asctime-date), names matched case-insensitively and only "GMT" as the zone
 * (RFC 9111 4.2).  A two-digit rfc850 year more than 50 years after the year of <now> is the
 * latest past year with those digits (RFC 9110 5.6.7); <now> is used for nothing else.
 * Returns the time in seconds since the epoch (a date before 1970 gives 0), or -1 when <s> is
 * not a valid HTTP-date (a list of dates included).
 */
time_t pt_http_parse_date(struct pt_str s, time_t now);

/* Writes <t> as an IMF-fixdate into <buf> (PT_HTTP_DATE_LEN bytes); returns its length. */
size_t pt_http_format_date(time_t t, char *buf);

#endif
