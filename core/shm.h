/*
 * shm.h: shared-memory zones, the memory every process of portier sees (backend health,
 * cache metadata, rate-limit counters, TLS sessions).
 *
 * A module declares a zone at config time (name, size, layout version, init callback); the
 * master creates it as a memfd mapped MAP_SHARED before forking, so the workers and the
 * helper all inherit the mapping.  A zone lives on across a reload (HUP) when its name,
 * size and version are unchanged (pt_shm_zone_take_over()), and across a binary upgrade
 * (USR2) through its memfd, inherited by the new binary (pt_shm_zone_adopt_fd()).
 *
 * The new binary may map the zone at another address, so nothing inside a zone may hold a
 * pointer: the zone's root and every link between objects in it are offsets from the
 * start of the zone (pt_shm_ptr() and pt_shm_off() convert).  Offset 0 is the zone's
 * header, never an object, so it stands for NULL.
 *
 * A zone starts with a header: a magic, the header's and the allocator's formats, the
 * owner's layout version, its sizes and its name, so that a binary that would misread an
 * inherited zone starts it empty instead.  The rest is a slab pool (slab.h) whose lock the
 * owner may also use for its own data.
 */
#ifndef PT_SHM_H
#define PT_SHM_H

#include <stdint.h>

#include "core/pt.h"
#include "core/slab.h"

#define PT_SHM_NAME_MAX 64 /* with the NUL */

/* Version of the zone header's layout, stamped in every zone. */
#define PT_SHM_FORMAT 1

struct pt_shm_zone {
    /* Set by the module that declares the zone. */
    char name[PT_SHM_NAME_MAX]; /* unique among zones */
    size_t size;                /* bytes the pool must offer at least */
    uint32_t version;           /* the owner's layout version: bump it when the layout changes */
    /* Called once the zone is mapped, in the master before workers fork.  <reused> is 0 on
     * a fresh (empty) zone: allocate the root with pt_slab_alloc() and publish it with
     * pt_shm_set_root().  It is 1 when the zone kept its contents (reload, upgrade): find
     * the root with pt_shm_root().  Returns PT_OK, or PT_ERROR to fail the zone. */
    int (*init)(struct pt_shm_zone *zone, int reused);
    void *ctx; /* the owner's, for init */

    /* Set by this file; meaningful only while <addr> is not NULL (so that a zone declared
     * zeroed owns nothing, not fd 0). */
    int fd;          /* the memfd, close-on-exec */
    void *addr;      /* the mapping, header first */
    size_t map_size; /* of the mapping and of the memfd */
    struct pt_slab_pool *pool;
    const char *declined; /* why the last take over or adoption was declined */

    struct pt_shm_zone *next; /* for the owner of the list of zones */
};

/* Creates zone <z> empty: a new memfd (close-on-exec, mode 0600, size sealed), its mapping,
 * header and pool, then calls <z>->init(<z>, 0).  <z>'s name must be 1 to 63 bytes and its size
 * not 0.  Returns PT_OK, or PT_ERROR (errno set when a system call failed) with <z> owning
 * nothing. */
int pt_shm_zone_create(struct pt_shm_zone *z);

/* On reload: moves the mapping and memfd of <old> (the previous configuration's zone of
 * the same name) into <z> if they are compatible (same name, size and version), then calls
 * <z>->init(<z>, 1).  Workers forked before keep using the same memory.  Returns PT_OK
 * (<old> owns nothing any more and may be destroyed), PT_DECLINED when not compatible
 * (nothing moved, <z>->declined says why: the caller destroys <old> and creates <z>), or
 * PT_ERROR when init failed (the mapping moved back to <old>, so the previous
 * configuration can keep running). */
int pt_shm_zone_take_over(struct pt_shm_zone *z, struct pt_shm_zone *old);

/* On binary upgrade: maps the zone memfd <fd> inherited from the old binary into <z> (at
 * whatever address) if its header shows it compatible (magic, formats, name, size and
 * version), marks <fd> close-on-exec and mode 0600 again and calls <z>->init(<z>, 1).  <fd> is
 * consumed: owned by <z> on PT_OK, closed otherwise.  Returns PT_OK, PT_DECLINED when <fd> is not
 * such a zone (<z>->declined says why: the caller creates <z> fresh), or PT_ERROR when
 * mapping or init failed (<z> owns nothing). */
int pt_shm_zone_adopt_fd(struct pt_shm_zone *z, int fd);

/* Unmaps <z> and closes its memfd; other processes' mappings are not affected.  Does
 * nothing if <z> owns nothing. */
void pt_shm_zone_destroy(struct pt_shm_zone *z);

/* Reads the name of the zone in memfd <fd> into <name> (PT_SHM_NAME_MAX bytes), so that a
 * new binary can match inherited fds to the zones it declares.  Returns PT_OK, PT_DECLINED
 * if <fd> does not hold a portier zone, or PT_ERROR with errno set. */
int pt_shm_fd_name(int fd, char *name);

/* Returns the zone named <name> in the list starting at <list> (linked by next), or NULL. */
struct pt_shm_zone *pt_shm_zone_find(struct pt_shm_zone *list, const char *name);

/* Returns the owner's root object of <z> (kept across reload and upgrade), or NULL if
 * none was set. */
void *pt_shm_root(const struct pt_shm_zone *z);

/* Makes <p> (in <z>, or NULL) the root of <z>, stored as an offset. */
void pt_shm_set_root(struct pt_shm_zone *z, void *p);

/* Converts offset <off> in <z> into a pointer in this process's mapping.  Returns NULL for
 * offset 0 and for an offset past the zone (a corrupt link must not reach outside). */
void *pt_shm_ptr(const struct pt_shm_zone *z, uint64_t off);

/* Converts <p>, which points into <z>, into the offset to store in the zone (0 for NULL). */
uint64_t pt_shm_off(const struct pt_shm_zone *z, const void *p);

#endif
