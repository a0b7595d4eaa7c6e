/* error.c - names and messages for bh_err codes, libuv's codes and errno
 * values, all from static tables (error_table.inc is generated from libuv's
 * UV_ERRNO_MAP by scripts/gen-error-table.py). The core does not link libuv:
 * on Unix libuv's codes are negative errno values plus a few fixed ones
 * (UV_EOF, UV_EAI_*), which the table carries. Nothing here allocates. */
#include <stddef.h>

#include <bytes_handoff/error.h>

struct bh_err_entry {
    int code;
    const char *name;
    const char *msg;
};

static const struct bh_err_entry bh_lib_table[] = {
    {BH_OK, "BH_OK", "success"},
    {BH_ENOMEM, "BH_ENOMEM", "out of memory"},
    {BH_ETOOLONG, "BH_ETOOLONG", "length limit exceeded"},
    {BH_ERANGE, "BH_ERANGE", "length or offset out of range"},
    {BH_EFULL, "BH_EFULL", "write queue budget exhausted"},
    {BH_ECLOSED, "BH_ECLOSED", "closed"},
    {BH_ECANCELED, "BH_ECANCELED", "canceled"},
    {BH_EINVAL, "BH_EINVAL", "invalid argument"},
    {BH_EIO, "BH_EIO", "i/o error"},
};

#include "error_table.inc"

#define BH_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The entry for err, or NULL. Library codes first: where an errno value and
 * a library code coincide (they do not on Linux) the library's name wins. */
static const struct bh_err_entry *find(int err)
{
    for (size_t i = 0; i < BH_COUNT(bh_lib_table); i++)
        if (bh_lib_table[i].code == err)
            return &bh_lib_table[i];
    if (err >= 0)
        return NULL;
    for (size_t i = 0; i < BH_COUNT(bh_errno_table); i++)
        if (bh_errno_table[i].code == err)
            return &bh_errno_table[i];
    return NULL;
}

const char *bh_strerror(int err)
{
    const struct bh_err_entry *e = find(err);
    return e ? e->msg : "unknown error";
}

const char *bh_err_name(int err)
{
    const struct bh_err_entry *e = find(err);
    return e ? e->name : "UNKNOWN";
}
