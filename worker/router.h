/*
 * router.h: choosing the server block by Host (nginx "server_name") and the location by
 * path (nginx "location").  Both tables are built at config time and read-only afterwards;
 * lookups do not allocate.  The values stored are the caller's (typically a server or
 * location config); the tables never free or dereference them.
 */
#ifndef PT_ROUTER_H
#define PT_ROUTER_H

#include "core/pt.h"

/* Longest host name that can match (RFC 1035 2.3.4); longer ones never do. */
#define PT_HOST_MAX 255

/* Capture pairs reported by pt_locations_find(): pair 0 is the whole match ($0), pairs
   1..9 the groups $1..$9.  A group that did not take part in the match is PT_LOC_UNSET. */
#define PT_LOC_MAX_CAPTURES 10
#define PT_LOC_UNSET        ((size_t)-1)

/* ---- server names ------------------------------------------------------------------ */

struct pt_names;

/* Returns a new empty name table, or NULL when out of memory. */
struct pt_names *pt_names_create(void);

/* Frees <n> and everything it allocated (not the values).  NULL is allowed. */
void pt_names_free(struct pt_names *n);

/*
 * Adds the server name <name> mapping to <value> (non-NULL) to <n>.  Forms, as in nginx:
 *   "example.com"            exact;
 *   "*.example.com"          leading wildcard: any name ending in ".example.com";
 *   "www.example.*"          trailing wildcard: any name starting with "www.example.";
 *   ".example.com"           both "example.com" (exact) and "*.example.com";
 *   "~^www\d+\.example\.com$" PCRE2 regex, case-insensitive;
 *   ""                       exact empty name: matches a request without a Host.
 * Names are stored lower-case; a trailing dot is dropped ("example.com." = "example.com").
 * Returns PT_OK; PT_DECLINED if the same name (or, for ".example.com", either half of it)
 * was already added, in which case nothing is added and the caller warns like nginx
 * ("conflicting server name"); or PT_ERROR with a message in <err>/<errlen> (which may be
 * NULL/0) for a bad wildcard ("w*w.example.com"), a regex that does not compile (the message
 * gives PCRE2's reason and the offset), a name longer than PT_HOST_MAX, or out of memory.
 */
int pt_names_add(struct pt_names *n, const char *name, void *value, char *err, size_t errlen);

/*
 * Returns the value for the Host <host>/<len>, or NULL when no name matches (the caller
 * then uses the default server).  A ":port" suffix (after "]" for an IPv6 literal) and one
 * trailing dot are ignored; matching is case-insensitive.  Order, as in nginx: exact name,
 * longest matching leading wildcard, longest matching trailing wildcard, then the first
 * matching regex in the order added (a regex that fails with a PCRE2 error counts as not
 * matching).  Hosts longer than PT_HOST_MAX never match.  Does not allocate.
 */
void *pt_names_find(const struct pt_names *n, const char *host, size_t len);

/* ---- locations --------------------------------------------------------------------- */

struct pt_locations;

/* Returns a new empty location table, or NULL when out of memory. */
struct pt_locations *pt_locations_create(void);

/* Frees <l> and everything it allocated (not the values).  NULL is allowed. */
void pt_locations_free(struct pt_locations *l);

/*
 * Adds the location <spec> mapping to <value> (non-NULL) to <l>.  <spec> is a modifier and
 * a pattern, as in nginx ("=/x" without the space is accepted too):
 *   "= /exact"   the path equals "/exact";
 *   "^~ /prefix" the path starts with "/prefix", and regexes are not tried;
 *   "~ regex"    PCRE2 regex, case-sensitive;
 *   "~* regex"   PCRE2 regex, case-insensitive;
 *   "/prefix"    the path starts with "/prefix".
 * Exact and prefix patterns must start with '/' and are normalized with pt_path_normalize()
 * so that they compare with canonical request paths ("/%7euser" is stored as "/~user").
 * Leading and trailing blanks of the spec are ignored.  Named locations ("@name") are not
 * handled here.  Returns PT_OK; PT_DECLINED for a duplicate (the same exact pattern, the
 * same prefix with or without "^~", or the same regex with the same case mode), in which
 * case nothing is added; or PT_ERROR with a message in <err>/<errlen> (which may be
 * NULL/0) for a bad spec, a regex that does not compile (PCRE2's reason and the offset), or
 * out of memory.
 */
int pt_locations_add(struct pt_locations *l, const char *spec, void *value, char *err,
                     size_t errlen);

/*
 * Sorts and links the prefix locations added to <l> (O(n log n)), so that finding one is
 * O(log n).  Call it once the last location is added (pt_locations_add() appends and marks
 * <l> as not built); pt_locations_find() builds an unbuilt table itself, in its process.
 * Does not allocate.
 */
void pt_locations_build(struct pt_locations *l);

/*
 * Returns the value of the location matching the canonical path <path>/<len>, in nginx's
 * order: an exact match wins at once; otherwise the longest matching prefix is remembered,
 * and wins if it is a "^~" prefix; otherwise the regexes are tried in the order added and
 * the first match wins; otherwise the longest prefix wins; NULL if nothing matches.
 * When <caps> (room for 2 * PT_LOC_MAX_CAPTURES offsets) and <ncaps> are given and a regex
 * wins, caps[2k], caps[2k+1] are the start and end offsets in <path> of capture k and
 * *<ncaps> is the number of pairs set (at most PT_LOC_MAX_CAPTURES); otherwise *<ncaps>
 * is 0.  If a regex fails to run (a PCRE2 match or JIT stack limit), NULL is returned and
 * *<ncaps> (when given) is set to PT_ERROR: the caller should answer 500, as nginx does,
 * rather than fall back to a less specific location that may lack the regex location's
 * access rules.
 * Does not allocate (PCRE2 match data is allocated at add time); not thread-safe, as the
 * match data is shared: one table per worker process.
 */
void *pt_locations_find(const struct pt_locations *l, const char *path, size_t len, size_t *caps,
                        int *ncaps);

#endif
