/*
 * test_shm.c: shared-memory zones (core/shm.h) across reload, upgrade and fork, and the
 * process-shared lock (core/shmtx.h) when its holder dies or is contended.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"
#include "core/shm.h"

#define ZONE_SIZE (64 * 1024)

/* What the test zone's owner keeps in it: a counter and a list linked by offsets. */
struct node {
    uint64_t next; /* offset */
    uint64_t value;
};

struct root {
    uint64_t counter;
    uint64_t head; /* offset of the first node */
    char label[32];
};

/* What init saw, through the zone's ctx. */
struct init_log {
    int calls;
    int reused;
    int fail;
};

static struct init_log log_a, log_b;
static struct pt_shm_zone zone_a, zone_b;

static int test_init(struct pt_shm_zone *z, int reused)
{
    struct init_log *log = z->ctx;
    struct root *root;

    log->calls++;
    log->reused = reused;
    if (log->fail)
        return PT_ERROR;
    if (reused)
        return pt_shm_root(z) != NULL ? PT_OK : PT_ERROR;
    root = pt_slab_alloc(z->pool, sizeof(*root));
    if (root == NULL)
        return PT_ERROR;
    strcpy(root->label, "root");
    pt_shm_set_root(z, root);
    return PT_OK;
}

/* Declares <z> as the test zone named <name> of <size> bytes at <version>. */
static void declare(struct pt_shm_zone *z, struct init_log *log, const char *name, size_t size,
                    uint32_t version)
{
    memset(z, 0, sizeof(*z));
    memset(log, 0, sizeof(*log));
    strcpy(z->name, name);
    z->size = size;
    z->version = version;
    z->init = test_init;
    z->ctx = log;
}

static void create_a(void)
{
    declare(&zone_a, &log_a, "test", ZONE_SIZE, 1);
    ck_assert_int_eq(pt_shm_zone_create(&zone_a), PT_OK);
}

static void teardown(void)
{
    pt_shm_zone_destroy(&zone_a);
    pt_shm_zone_destroy(&zone_b);
}

static struct root *root_of(const struct pt_shm_zone *z)
{
    struct root *root = pt_shm_root(z);

    ck_assert_ptr_nonnull(root);
    return root;
}

/* Pushes nodes holding <first> .. <last> on the list of <z>'s root. */
static void push_nodes(struct pt_shm_zone *z, int first, int last)
{
    struct root *root = root_of(z);

    for (int i = first; i <= last; i++) {
        struct node *nd = pt_slab_alloc(z->pool, sizeof(*nd));

        ck_assert_ptr_nonnull(nd);
        nd->value = (uint64_t)i;
        nd->next = root->head;
        root->head = pt_shm_off(z, nd);
    }
}

/* Asserts that the list of <z>'s root holds <n> .. 1, read through <z>'s own mapping. */
static void assert_nodes(const struct pt_shm_zone *z, int n)
{
    const struct node *nd = pt_shm_ptr(z, root_of(z)->head);

    for (int i = n; i >= 1; i--) {
        ck_assert_ptr_nonnull(nd);
        ck_assert_uint_eq(nd->value, (uint64_t)i);
        nd = pt_shm_ptr(z, nd->next);
    }
    ck_assert_ptr_null(nd);
}

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
}

/* Waits for child <pid> and asserts it exited with status 0. */
static void assert_child_ok(pid_t pid)
{
    int status;

    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
}

START_TEST(create_maps_a_fresh_zone_and_runs_init)
{
    size_t used, free_bytes;

    create_a();
    ck_assert_int_eq(log_a.calls, 1);
    ck_assert_int_eq(log_a.reused, 0);
    ck_assert_int_ge(zone_a.fd, 0);
    ck_assert_int_eq(fcntl(zone_a.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    ck_assert_str_eq(root_of(&zone_a)->label, "root");
    pt_slab_stats(zone_a.pool, &used, &free_bytes);
    ck_assert_uint_ge(used + free_bytes, ZONE_SIZE);
}
END_TEST

START_TEST(create_refuses_an_empty_name_or_size)
{
    declare(&zone_a, &log_a, "", ZONE_SIZE, 1);
    ck_assert_int_eq(pt_shm_zone_create(&zone_a), PT_ERROR);
    declare(&zone_a, &log_a, "test", 0, 1);
    ck_assert_int_eq(pt_shm_zone_create(&zone_a), PT_ERROR);
    ck_assert_ptr_null(zone_a.addr);
    ck_assert_int_eq(log_a.calls, 0);
}
END_TEST

START_TEST(create_fails_and_owns_nothing_when_init_fails)
{
    declare(&zone_a, &log_a, "test", ZONE_SIZE, 1);
    log_a.fail = 1;
    ck_assert_int_eq(pt_shm_zone_create(&zone_a), PT_ERROR);
    ck_assert_ptr_null(zone_a.addr);
    ck_assert_int_eq(zone_a.fd, -1);
}
END_TEST

START_TEST(offsets_round_trip_and_zero_means_null)
{
    char *p;

    create_a();
    p = pt_slab_alloc(zone_a.pool, 10);
    ck_assert_ptr_eq(pt_shm_ptr(&zone_a, pt_shm_off(&zone_a, p)), p);
    ck_assert_uint_eq(pt_shm_off(&zone_a, NULL), 0);
    ck_assert_ptr_null(pt_shm_ptr(&zone_a, 0));
    ck_assert_ptr_null(pt_shm_ptr(&zone_a, zone_a.map_size));
    pt_shm_set_root(&zone_a, NULL);
    ck_assert_ptr_null(pt_shm_root(&zone_a));
}
END_TEST

START_TEST(zone_mapped_again_at_another_address_keeps_root_and_data)
{
    create_a();
    push_nodes(&zone_a, 1, 100);
    /* What a new binary does with the inherited fd: its own mapping, elsewhere. */
    declare(&zone_b, &log_b, "test", ZONE_SIZE, 1);
    ck_assert_int_eq(pt_shm_zone_adopt_fd(&zone_b, dup(zone_a.fd)), PT_OK);
    ck_assert_ptr_ne(zone_b.addr, zone_a.addr);
    ck_assert_int_eq(log_b.calls, 1);
    ck_assert_int_eq(log_b.reused, 1);
    ck_assert_str_eq(root_of(&zone_b)->label, "root");
    assert_nodes(&zone_b, 100);

    /* Both mappings are one memory with one pool. */
    push_nodes(&zone_b, 101, 101);
    assert_nodes(&zone_a, 101);
    ck_assert_int_eq(pt_slab_check(zone_a.pool), PT_OK);
}
END_TEST

START_TEST(adopted_fd_is_close_on_exec_again)
{
    int fd;

    create_a();
    fd = dup(zone_a.fd); /* dup clears close-on-exec, as the upgrade does */
    declare(&zone_b, &log_b, "test", ZONE_SIZE, 1);
    ck_assert_int_eq(pt_shm_zone_adopt_fd(&zone_b, fd), PT_OK);
    ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}
END_TEST

/* Asserts that adopting zone A's fd as a zone declared <name>/<size>/<version> is declined,
 * closes the fd and does not run init. */
static void assert_adopt_declined(const char *name, size_t size, uint32_t version)
{
    int fd;

    create_a();
    fd = dup(zone_a.fd);
    declare(&zone_b, &log_b, name, size, version);
    ck_assert_int_eq(pt_shm_zone_adopt_fd(&zone_b, fd), PT_DECLINED);
    ck_assert_ptr_nonnull(zone_b.declined);
    ck_assert_ptr_null(zone_b.addr);
    ck_assert(!fd_is_open(fd));
    ck_assert_int_eq(log_b.calls, 0);
}

START_TEST(adopt_declines_another_layout_version)
{
    assert_adopt_declined("test", ZONE_SIZE, 2);
}
END_TEST

START_TEST(adopt_declines_another_size)
{
    assert_adopt_declined("test", 2 * ZONE_SIZE, 1);
}
END_TEST

START_TEST(adopt_declines_another_name)
{
    assert_adopt_declined("other", ZONE_SIZE, 1);
}
END_TEST

START_TEST(adopt_declines_a_memfd_that_is_not_a_zone)
{
    int fd = memfd_create("junk", MFD_CLOEXEC);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 1 << 20), 0);
    declare(&zone_b, &log_b, "test", ZONE_SIZE, 1);
    ck_assert_int_eq(pt_shm_zone_adopt_fd(&zone_b, fd), PT_DECLINED);
    ck_assert_str_eq(zone_b.declined, "it is not a portier zone");
    ck_assert(!fd_is_open(fd));
}
END_TEST

START_TEST(fd_name_tells_which_zone_an_fd_holds)
{
    char name[PT_SHM_NAME_MAX];
    int junk = memfd_create("junk", MFD_CLOEXEC);

    create_a();
    ck_assert_int_eq(pt_shm_fd_name(zone_a.fd, name), PT_OK);
    ck_assert_str_eq(name, "test");
    ck_assert_int_eq(pt_shm_fd_name(junk, name), PT_DECLINED);
    close(junk);
}
END_TEST

START_TEST(take_over_keeps_the_mapping_and_data)
{
    void *addr;

    create_a();
    push_nodes(&zone_a, 1, 10);
    addr = zone_a.addr;
    declare(&zone_b, &log_b, "test", ZONE_SIZE, 1);
    ck_assert_int_eq(pt_shm_zone_take_over(&zone_b, &zone_a), PT_OK);
    ck_assert_ptr_eq(zone_b.addr, addr); /* workers forked earlier share it still */
    ck_assert_ptr_null(zone_a.addr);
    ck_assert_int_eq(log_b.reused, 1);
    pt_shm_zone_destroy(&zone_a); /* the old configuration goes: nothing to release */
    assert_nodes(&zone_b, 10);
    ck_assert_int_ge(fcntl(zone_b.fd, F_GETFD), 0);
}
END_TEST

START_TEST(take_over_declines_a_changed_size)
{
    create_a();
    declare(&zone_b, &log_b, "test", 2 * ZONE_SIZE, 1);
    ck_assert_int_eq(pt_shm_zone_take_over(&zone_b, &zone_a), PT_DECLINED);
    ck_assert_str_eq(zone_b.declined, "its size changed");
    ck_assert_ptr_nonnull(zone_a.addr);
    ck_assert_ptr_null(zone_b.addr);
    ck_assert_int_eq(log_b.calls, 0);
}
END_TEST

START_TEST(take_over_declines_a_changed_version)
{
    create_a();
    declare(&zone_b, &log_b, "test", ZONE_SIZE, 7);
    ck_assert_int_eq(pt_shm_zone_take_over(&zone_b, &zone_a), PT_DECLINED);
    ck_assert_str_eq(zone_b.declined, "its layout version changed");
    ck_assert_ptr_nonnull(zone_a.addr);
}
END_TEST

START_TEST(take_over_with_failing_init_leaves_the_zone_to_the_old_owner)
{
    void *addr;

    create_a();
    addr = zone_a.addr;
    declare(&zone_b, &log_b, "test", ZONE_SIZE, 1);
    log_b.fail = 1;
    ck_assert_int_eq(pt_shm_zone_take_over(&zone_b, &zone_a), PT_ERROR);
    ck_assert_ptr_eq(zone_a.addr, addr);
    ck_assert_ptr_null(zone_b.addr);
    ck_assert_str_eq(root_of(&zone_a)->label, "root");
}
END_TEST

START_TEST(zone_find_returns_the_zone_of_that_name)
{
    declare(&zone_a, &log_a, "one", ZONE_SIZE, 1);
    declare(&zone_b, &log_b, "two", ZONE_SIZE, 1);
    zone_a.next = &zone_b;
    ck_assert_ptr_eq(pt_shm_zone_find(&zone_a, "two"), &zone_b);
    ck_assert_ptr_eq(pt_shm_zone_find(&zone_a, "one"), &zone_a);
    ck_assert_ptr_null(pt_shm_zone_find(&zone_a, "three"));
}
END_TEST

START_TEST(writes_of_a_forked_child_are_seen_by_the_parent)
{
    const struct node *nd;
    pid_t pid;

    create_a();
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct root *root = pt_shm_root(&zone_a);
        struct node *made = pt_slab_alloc(zone_a.pool, sizeof(*made));

        if (root == NULL || made == NULL)
            _exit(1);
        made->value = 42;
        root->head = pt_shm_off(&zone_a, made);
        strcpy(root->label, "child");
        _exit(0);
    }
    assert_child_ok(pid);
    ck_assert_str_eq(root_of(&zone_a)->label, "child");
    nd = pt_shm_ptr(&zone_a, root_of(&zone_a)->head);
    ck_assert_ptr_nonnull(nd);
    ck_assert_uint_eq(nd->value, 42);
    ck_assert_int_eq(pt_slab_check(zone_a.pool), PT_OK); /* the child's allocation counts */
}
END_TEST

START_TEST(lock_is_recovered_when_its_holder_dies)
{
    struct pt_shmtx *lock;
    pid_t pid;

    create_a();
    lock = pt_slab_lock(zone_a.pool);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        pt_shmtx_lock(lock);
        _exit(0); /* dies holding it */
    }
    assert_child_ok(pid);
    ck_assert_int_eq(pt_shmtx_lock(lock), PT_SHMTX_RECOVERED);
    pt_shmtx_unlock(lock);
    ck_assert_int_eq(pt_shmtx_lock(lock), PT_OK);
    pt_shmtx_unlock(lock);
    ck_assert_ptr_nonnull(pt_slab_alloc(zone_a.pool, 100));
    ck_assert_int_eq(pt_slab_check(zone_a.pool), PT_OK);
}
END_TEST

START_TEST(trylock_says_again_while_another_process_holds_the_lock)
{
    struct pt_shmtx *lock;
    int go[2], held[2];
    char c = 0;
    pid_t pid;

    create_a();
    lock = pt_slab_lock(zone_a.pool);
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(held), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int rc = pt_shmtx_lock(lock);

        if (write(held[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(1);
        pt_shmtx_unlock(lock);
        _exit(rc == PT_OK ? 0 : 1);
    }
    ck_assert_int_eq(read(held[0], &c, 1), 1);
    ck_assert_int_eq(pt_shmtx_trylock(lock), PT_AGAIN);
    ck_assert_int_eq(write(go[1], &c, 1), 1);
    assert_child_ok(pid);
    ck_assert_int_eq(pt_shmtx_trylock(lock), PT_OK);
    pt_shmtx_unlock(lock);
}
END_TEST

#define INCREMENTS 100000

START_TEST(two_processes_counting_under_the_lock_lose_no_increment)
{
    struct pt_shmtx *lock;
    volatile uint64_t *counter;
    pid_t pids[2];

    create_a();
    lock = pt_slab_lock(zone_a.pool);
    counter = &root_of(&zone_a)->counter;
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        ck_assert_int_ge(pids[k], 0);
        if (pids[k] != 0)
            continue;
        for (int i = 0; i < INCREMENTS; i++) {
            if (pt_shmtx_lock(lock) != PT_OK)
                _exit(1);
            *counter = *counter + 1; /* a read then a write: racy without the lock */
            pt_shmtx_unlock(lock);
        }
        _exit(0);
    }
    assert_child_ok(pids[0]);
    assert_child_ok(pids[1]);
    ck_assert_uint_eq(*counter, 2 * INCREMENTS);
}
END_TEST

/* Churns the pool of a fresh zone A in a child holding the pool's lock, kills the child
 * and returns whether it left an operation half done (the pool then awaits repair). */
static int kill_a_churning_holder(void)
{
    volatile uint64_t *progress;
    pid_t pid;
    int status;

    /* Room for everything the child may hold when it dies (64 objects of up to 8 KiB),
     * which stays lost: only the dead child knew it. */
    declare(&zone_a, &log_a, "test", 1 << 20, 1);
    ck_assert_int_eq(pt_shm_zone_create(&zone_a), PT_OK);
    progress = &root_of(&zone_a)->counter;
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        void *held[64] = {0};

        pt_shmtx_lock(pt_slab_lock(zone_a.pool));
        for (uint32_t i = 0;; i++) {
            uint32_t k = (i * 2654435761u) >> 26;

            pt_slab_free_locked(zone_a.pool, held[k]);
            held[k] = pt_slab_alloc_locked(zone_a.pool, 8u << (i % 11));
            __atomic_fetch_add(progress, 1, __ATOMIC_RELAXED);
        }
    }
    while (__atomic_load_n(progress, __ATOMIC_RELAXED) < 20000)
        usleep(1000);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status));
    return pt_slab_check(zone_a.pool) != PT_OK;
}

START_TEST(pool_is_repaired_after_a_holder_is_killed_mid_operation)
{
    int half_done = 0;

    /* About half of the kills land inside an operation; try until one does. */
    for (int attempt = 0; attempt < 50 && !half_done; attempt++) {
        half_done = kill_a_churning_holder();
        ck_assert_ptr_nonnull(pt_slab_alloc(zone_a.pool, 3000));
        ck_assert_int_eq(pt_slab_check(zone_a.pool), PT_OK);
        ck_assert_str_eq(root_of(&zone_a)->label, "root");
        pt_shm_zone_destroy(&zone_a);
    }
    ck_assert_msg(half_done, "no kill landed inside an operation");
}
END_TEST

Suite *pt_test_suite(void)
{
    Suite *s = suite_create("shm");
    TCase *zone = tcase_create("zone"), *reuse = tcase_create("reuse");
    TCase *procs = tcase_create("processes");

    tcase_add_checked_fixture(zone, NULL, teardown);
    tcase_add_test(zone, create_maps_a_fresh_zone_and_runs_init);
    tcase_add_test(zone, create_refuses_an_empty_name_or_size);
    tcase_add_test(zone, create_fails_and_owns_nothing_when_init_fails);
    tcase_add_test(zone, offsets_round_trip_and_zero_means_null);
    tcase_add_test(zone, zone_find_returns_the_zone_of_that_name);
    suite_add_tcase(s, zone);

    tcase_add_checked_fixture(reuse, NULL, teardown);
    tcase_add_test(reuse, zone_mapped_again_at_another_address_keeps_root_and_data);
    tcase_add_test(reuse, adopted_fd_is_close_on_exec_again);
    tcase_add_test(reuse, adopt_declines_another_layout_version);
    tcase_add_test(reuse, adopt_declines_another_size);
    tcase_add_test(reuse, adopt_declines_another_name);
    tcase_add_test(reuse, adopt_declines_a_memfd_that_is_not_a_zone);
    tcase_add_test(reuse, fd_name_tells_which_zone_an_fd_holds);
    tcase_add_test(reuse, take_over_keeps_the_mapping_and_data);
    tcase_add_test(reuse, take_over_declines_a_changed_size);
    tcase_add_test(reuse, take_over_declines_a_changed_version);
    tcase_add_test(reuse, take_over_with_failing_init_leaves_the_zone_to_the_old_owner);
    suite_add_tcase(s, reuse);

    tcase_add_checked_fixture(procs, NULL, teardown);
    tcase_set_timeout(procs, 60);
    tcase_add_test(procs, writes_of_a_forked_child_are_seen_by_the_parent);
    tcase_add_test(procs, lock_is_recovered_when_its_holder_dies);
    tcase_add_test(procs, trylock_says_again_while_another_process_holds_the_lock);
    tcase_add_test(procs, two_processes_counting_under_the_lock_lose_no_increment);
    tcase_add_test(procs, pool_is_repaired_after_a_holder_is_killed_mid_operation);
    suite_add_tcase(s, procs);
    return s;
}
