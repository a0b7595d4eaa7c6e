/* test_ticket.c - the completion recorder of the queue tests. */
#include "test_ticket.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

static int g_seq;

void test_ticket_record(test_ticket *t, int status)
{
    t->calls++;
    t->status = status;
    t->order = ++g_seq;
}

void test_tickets_expect_in_order(const test_ticket *t, int n, int status)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, status);
        if (i > 0)
            assert_true(t[i].order > t[i - 1].order);
    }
}

int test_tickets_expect_failed_tail(const test_ticket *t, int n)
{
    int errors = 0, err = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(t[i].calls, 1);
        if (t[i].status != 0) {
            if (!err)
                err = t[i].status;
            assert_int_equal(t[i].status, err); /* one error for all pending */
            errors++;
        } else {
            assert_int_equal(errors, 0); /* successes only before the failure */
        }
    }
    assert_true(errors > 0);
    return err;
}
