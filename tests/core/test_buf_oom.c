/* test_buf_oom.c - allocation-failure injection over a realistic bh_buf /
 * bh_bytes workload. For every allocation index N the Nth allocation fails:
 * each call must either succeed or return BH_ENOMEM with the buffer's content
 * unchanged, and at the end nothing may be leaked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bytes_handoff.h>

#include "test_alloc.h"
#include "test_main.h"

#define MODEL_MAX 65536
#define HELD_MAX 64

typedef struct workload {
    bh_buf buf;
    uint8_t model[MODEL_MAX]; /* expected content of buf */
    size_t model_len;
    bh_bytes held[HELD_MAX]; /* slices kept alive to force shared growth */
    uint8_t held_copy[HELD_MAX][256];
    size_t nheld;
    size_t enomem; /* BH_ENOMEM results seen */
} workload;

static void check_model(const workload *w)
{
    assert_int_equal(bh_buf_len(&w->buf), w->model_len);
    if (w->model_len)
        assert_memory_equal(bh_buf_data(&w->buf), w->model, w->model_len);
}

/* Every call either succeeds or reports BH_ENOMEM and changed nothing. */
static int ok_or_enomem(workload *w, int rc)
{
    if (rc == BH_ENOMEM) {
        w->enomem++;
        check_model(w);
        return 0;
    }
    assert_int_equal(rc, BH_OK);
    return 1;
}

static void model_append(workload *w, const uint8_t *p, size_t n)
{
    if (ok_or_enomem(w, bh_buf_append(&w->buf, p, n))) {
        memcpy(w->model + w->model_len, p, n);
        w->model_len += n;
    }
    check_model(w);
}

static void model_split(workload *w, size_t n, int keep)
{
    bh_bytes s;
    assert_int_equal(bh_buf_split_prefix(&w->buf, n, &s), BH_OK);
    assert_memory_equal(s.ptr, w->model, n);
    memmove(w->model, w->model + n, w->model_len - n);
    w->model_len -= n;
    if (keep && w->nheld < HELD_MAX && n <= 256) {
        memcpy(w->held_copy[w->nheld], s.ptr, n);
        w->held[w->nheld++] = s;
    } else {
        bh_bytes_release(&s);
    }
    check_model(w);
}

static void release_held(workload *w)
{
    for (size_t i = 0; i < w->nheld; i++) {
        assert_memory_equal(w->held[i].ptr, w->held_copy[i], w->held[i].len);
        bh_bytes_release(&w->held[i]);
    }
    w->nheld = 0;
}

static void free_owned(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void run_workload(workload *w)
{
    uint8_t chunk[2048];
    uint32_t seed = 12345;
    bh_buf_init(&w->buf, MODEL_MAX);
    w->model_len = 0;
    w->nheld = 0;
    w->enomem = 0;

    for (int round = 0; round < 40; round++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % sizeof chunk;
        for (size_t i = 0; i < n; i++)
            chunk[i] = (uint8_t)(round * 31 + i);
        model_append(w, chunk, n);

        /* reserve + commit path, as a socket read would use it */
        uint8_t *spare;
        size_t spare_len;
        if (ok_or_enomem(w, bh_buf_reserve(&w->buf, 300, &spare, &spare_len))) {
            memset(spare, 'r', 300);
            assert_int_equal(bh_buf_commit(&w->buf, 300), BH_OK);
            memset(w->model + w->model_len, 'r', 300);
            w->model_len += 300;
        }
        check_model(w);

        /* hand off frames; keep some alive so growth must allocate */
        while (w->model_len > 200) {
            model_split(w, 100 + round % 50, round % 3 == 0);
        }
        if (round % 7 == 6)
            release_held(w);

        /* a mutable prefix, grown separately */
        if (w->model_len > 10) {
            bh_buf head;
            assert_int_equal(bh_buf_split_prefix_mut(&w->buf, 10, &head), BH_OK);
            uint8_t expect[20];
            memcpy(expect, w->model, 10);
            memmove(w->model, w->model + 10, w->model_len - 10);
            w->model_len -= 10;
            int rc = bh_buf_append(&head, "0123456789", 10);
            if (ok_or_enomem(w, rc)) {
                memcpy(expect + 10, "0123456789", 10);
                assert_memory_equal(bh_buf_data(&head), expect, 20);
            } else {
                assert_memory_equal(bh_buf_data(&head), expect, 10);
            }
            bh_buf_free(&head);
        }

        /* standalone slices */
        bh_bytes c;
        if (ok_or_enomem(w, bh_bytes_copy(&c, chunk, 64))) {
            bh_bytes sub;
            assert_int_equal(bh_bytes_slice(&c, 8, 8, &sub), BH_OK);
            bh_bytes_release(&c);
            assert_memory_equal(sub.ptr, chunk + 8, 8);
            bh_bytes_release(&sub);
        } else {
            assert_int_equal(c.len, 0);
        }
        void *owned = malloc(32);
        bh_bytes o;
        if (ok_or_enomem(w, bh_bytes_from_owned(&o, owned, 32, free_owned, NULL)))
            bh_bytes_release(&o);
        else
            free(owned);

        /* mode switch: the tail moves out and back without a copy */
        if (round % 5 == 4) {
            bh_buf tail;
            const uint8_t *p = bh_buf_data(&w->buf);
            assert_int_equal(bh_buf_take_tail(&w->buf, &tail), BH_OK);
            assert_int_equal(bh_buf_len(&w->buf), 0);
            assert_ptr_equal(bh_buf_data(&tail), p);
            assert_int_equal(bh_buf_take_tail(&tail, &w->buf), BH_OK);
            check_model(w);
        }
    }
    release_held(w);
    bh_buf_free(&w->buf);
}

static workload g_w;

static void workload_without_failures_allocates_and_frees_everything(void **state)
{
    (void)state;
    test_alloc_install(0);
    run_workload(&g_w);
    bh_thread_cache_trim(); /* freed blocks wait in the cache */
    test_alloc_stats st;
    test_alloc_stats_get(&st);
    test_alloc_uninstall();
    assert_int_equal(g_w.enomem, 0);
    assert_true(st.attempts > 20);
    assert_int_equal(st.live, 0);
}

/* Fails allocation N for every N the workload reaches, so every allocation
 * site it exercises (bytes_copy, from_owned, fresh block, realloc) fails
 * at least once. The block cache is off: a freed block it could not take in
 * (its table failing to grow) is freed, a failure no call reports. */
static void every_allocation_failure_is_reported_and_leaks_nothing(void **state)
{
    (void)state;
    bh_block_cache_set_limits(0, 0);
    test_alloc_install(0);
    run_workload(&g_w);
    test_alloc_stats clean;
    test_alloc_stats_get(&clean);
    test_alloc_uninstall();

    size_t points = 0;
    for (size_t n = 1; n <= clean.attempts; n++) {
        test_alloc_install(n);
        run_workload(&g_w);
        bh_thread_cache_trim();
        test_alloc_stats st;
        test_alloc_stats_get(&st);
        test_alloc_uninstall();
        assert_int_equal(st.failed, 1);
        assert_int_equal(g_w.enomem, 1);
        assert_int_equal(st.live, 0);
        points++;
    }
    bh_block_cache_set_limits(BH_BLOCK_CACHE_MAX_BLOCKS_DEFAULT, BH_BLOCK_CACHE_MAX_BYTES_DEFAULT);
    print_message("allocation failure points exercised: %zu\n", points);
    assert_int_equal(points, clean.attempts);
}

TEST_MAIN(test_alloc_checked(workload_without_failures_allocates_and_frees_everything),
          test_alloc_checked(every_allocation_failure_is_reported_and_leaks_nothing))
