/* shm.c: shared-memory zones (see shm.h for the lifecycle and the offsets rule). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHM_MAGIC   0x454e4f5a54524f50ULL /* "PORTZONE" in memory on little endian */
#define HEADER_SIZE 128                   /* the pool starts here, 16-aligned */

/* A memfd is born 0777: any process of the master's uid that reaches it through
 * /proc/PID/fd could open it.  Workers and the helper need no access check (they inherit
 * the mapping through fork, a new binary the descriptor), so only the owner may open it. */
#define ZONE_MODE 0600

/* The start of every zone.  Fixed-width fields only: it is read by other binaries. */
struct shm_header {
    uint64_t magic; /* written last: a zone half formatted is not a zone */
    uint32_t format;
    uint32_t slab_format;
    uint32_t version;
    uint32_t unused;
    uint64_t size;
    uint64_t map_size;
    uint64_t root; /* offset of the owner's root, 0 for none */
    char name[PT_SHM_NAME_MAX];
};

_Static_assert(sizeof(struct shm_header) <= HEADER_SIZE, "zone header too large");

static inline struct shm_header *header(const struct pt_shm_zone *z)
{
    return z->addr;
}

/* The size of the mapping for a zone whose pool offers <size> bytes, or 0 if too large. */
static size_t zone_map_size(size_t size)
{
    size_t region = pt_slab_region_size(size), sys_page = (size_t)sysconf(_SC_PAGESIZE);

    if (region == 0 || region > SIZE_MAX - HEADER_SIZE - sys_page)
        return 0;
    return (HEADER_SIZE + region + sys_page - 1) / sys_page * sys_page;
}

static int name_valid(const char *name)
{
    size_t len = strnlen(name, PT_SHM_NAME_MAX);

    return len > 0 && len < PT_SHM_NAME_MAX;
}

/* Makes <z> the owner of <fd> mapped at <addr>. */
static void attach(struct pt_shm_zone *z, int fd, void *addr, size_t map_size)
{
    z->fd = fd;
    z->addr = addr;
    z->map_size = map_size;
    z->pool = (struct pt_slab_pool *)((char *)addr + HEADER_SIZE);
}

static void detach(struct pt_shm_zone *z)
{
    z->fd = -1;
    z->addr = NULL;
    z->map_size = 0;
    z->pool = NULL;
}

static int run_init(struct pt_shm_zone *z, int reused)
{
    return z->init == NULL ? PT_OK : z->init(z, reused);
}

/* Opens a memfd of <map_size> bytes for zone <name>.  Its size is sealed: a zone shrunk by
 * mistake would kill every process touching the lost pages with SIGBUS.  Returns the fd or
 * -1 with errno set. */
static int memfd_open(const char *name, size_t map_size)
{
    char label[PT_SHM_NAME_MAX + 16];
    int fd, err;

    /* The label shows in /proc/<pid>/fd and /proc/<pid>/maps, which helps operators. */
    snprintf(label, sizeof(label), "portier:%s", name);
    fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    if (fchmod(fd, ZONE_MODE) == 0 && ftruncate(fd, (off_t)map_size) == 0 &&
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
        return fd;
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

/* Formats the header and pool of zone <z>, freshly mapped and zero-filled. */
static int format(struct pt_shm_zone *z)
{
    struct shm_header *h = header(z);

    if (pt_slab_init(z->pool, z->map_size - HEADER_SIZE) == NULL)
        return PT_ERROR;
    h->format = PT_SHM_FORMAT;
    h->slab_format = PT_SLAB_FORMAT;
    h->version = z->version;
    h->size = z->size;
    h->map_size = z->map_size;
    h->root = 0;
    memcpy(h->name, z->name, strlen(z->name) + 1);
    __atomic_store_n(&h->magic, SHM_MAGIC, __ATOMIC_RELEASE);
    return PT_OK;
}

int pt_shm_zone_create(struct pt_shm_zone *z)
{
    size_t map_size = zone_map_size(z->size);
    void *addr;
    int fd;

    detach(z);
    if (!name_valid(z->name) || z->size == 0 || map_size == 0) {
        errno = EINVAL;
        return PT_ERROR;
    }
    fd = memfd_open(z->name, map_size);
    if (fd < 0)
        return PT_ERROR;
    addr = mmap(NULL, map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED) {
        int err = errno;
        close(fd);
        errno = err;
        return PT_ERROR;
    }
    attach(z, fd, addr, map_size);
    if (format(z) != PT_OK || run_init(z, 0) != PT_OK) {
        pt_shm_zone_destroy(z);
        return PT_ERROR;
    }
    return PT_OK;
}

int pt_shm_zone_take_over(struct pt_shm_zone *z, struct pt_shm_zone *old)
{
    z->declined = NULL;
    if (old->addr == NULL)
        z->declined = "the previous zone is not mapped";
    else if (strncmp(z->name, old->name, PT_SHM_NAME_MAX) != 0)
        z->declined = "its name changed";
    else if (z->size != old->size)
        z->declined = "its size changed";
    else if (z->version != old->version)
        z->declined = "its layout version changed";
    if (z->declined != NULL)
        return PT_DECLINED;

    attach(z, old->fd, old->addr, old->map_size);
    detach(old);
    if (run_init(z, 1) != PT_OK) {
        attach(old, z->fd, z->addr, z->map_size);
        detach(z);
        return PT_ERROR;
    }
    return PT_OK;
}

/* Returns why the zone header <h> of a <file_size>-byte memfd cannot serve as <z>, or
 * NULL if it can. */
static const char *mismatch(const struct shm_header *h, const struct pt_shm_zone *z,
                            size_t file_size)
{
    if (h->magic != SHM_MAGIC)
        return "it is not a portier zone";
    if (h->format != PT_SHM_FORMAT || h->slab_format != PT_SLAB_FORMAT)
        return "its format differs from this binary's";
    if (strncmp(h->name, z->name, PT_SHM_NAME_MAX) != 0)
        return "its name differs";
    if (h->size != z->size || h->map_size != file_size || file_size != zone_map_size(z->size))
        return "its size changed";
    if (h->version != z->version)
        return "its layout version changed";
    return NULL;
}

/* Closes <fd> and returns <rc>, keeping errno for the caller. */
static int close_with(int fd, int rc)
{
    int err = errno;

    close(fd);
    errno = err;
    return rc;
}

int pt_shm_zone_adopt_fd(struct pt_shm_zone *z, int fd)
{
    struct stat st;
    void *addr;

    detach(z);
    z->declined = NULL;
    if (fstat(fd, &st) < 0)
        return close_with(fd, PT_ERROR);
    if (st.st_size < HEADER_SIZE) {
        z->declined = "it is not a portier zone";
        return close_with(fd, PT_DECLINED);
    }
    addr = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (addr == MAP_FAILED)
        return close_with(fd, PT_ERROR);
    z->declined = mismatch(addr, z, (size_t)st.st_size);
    if (z->declined != NULL) {
        munmap(addr, (size_t)st.st_size);
        return close_with(fd, PT_DECLINED);
    }
    /* The old master cleared close-on-exec to pass the fd on; only the next upgrade may.
     * An older binary's zone may still be 0777. */
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fchmod(fd, ZONE_MODE) < 0) {
        munmap(addr, (size_t)st.st_size);
        return close_with(fd, PT_ERROR);
    }
    attach(z, fd, addr, (size_t)st.st_size);
    if (run_init(z, 1) != PT_OK) {
        pt_shm_zone_destroy(z);
        return PT_ERROR;
    }
    return PT_OK;
}

void pt_shm_zone_destroy(struct pt_shm_zone *z)
{
    if (z->addr == NULL)
        return;
    munmap(z->addr, z->map_size);
    close(z->fd);
    detach(z);
}

int pt_shm_fd_name(int fd, char *name)
{
    struct shm_header h;
    ssize_t n = pread(fd, &h, sizeof(h), 0);

    if (n < 0)
        return PT_ERROR;
    if ((size_t)n < sizeof(h) || h.magic != SHM_MAGIC ||
        strnlen(h.name, PT_SHM_NAME_MAX) == PT_SHM_NAME_MAX)
        return PT_DECLINED;
    memcpy(name, h.name, PT_SHM_NAME_MAX);
    return PT_OK;
}

struct pt_shm_zone *pt_shm_zone_find(struct pt_shm_zone *list, const char *name)
{
    for (; list != NULL; list = list->next) {
        if (strncmp(list->name, name, PT_SHM_NAME_MAX) == 0)
            return list;
    }
    return NULL;
}

/* The root is published with release and read with acquire: a process that finds it
 * also finds what was written into it before. */
void *pt_shm_root(const struct pt_shm_zone *z)
{
    return pt_shm_ptr(z, __atomic_load_n(&header(z)->root, __ATOMIC_ACQUIRE));
}

void pt_shm_set_root(struct pt_shm_zone *z, void *p)
{
    __atomic_store_n(&header(z)->root, pt_shm_off(z, p), __ATOMIC_RELEASE);
}

void *pt_shm_ptr(const struct pt_shm_zone *z, uint64_t off)
{
    if (off == 0 || off >= z->map_size)
        return NULL;
    return (char *)z->addr + off;
}

uint64_t pt_shm_off(const struct pt_shm_zone *z, const void *p)
{
    return p == NULL ? 0 : (uint64_t)((const char *)p - (const char *)z->addr);
}
