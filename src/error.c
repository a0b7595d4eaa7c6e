/* error.c - names and messages for bh_err codes; libuv codes are delegated
 * to uv_strerror()/uv_err_name(). */
#include <uv.h>

#include <bytes_handoff/error.h>

static const struct {
    int code;
    const char *name;
    const char *msg;
} bh_errors[] = {
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

#define BH_NERRORS (sizeof bh_errors / sizeof bh_errors[0])

/* libuv codes are negative errno values (or small negative UV_ codes) well
 * above our range; anything else is unknown. */
static int is_uv_code(int err) { return err < 0 && err > -4096; }

const char *bh_strerror(int err)
{
    for (size_t i = 0; i < BH_NERRORS; i++)
        if (bh_errors[i].code == err)
            return bh_errors[i].msg;
    if (is_uv_code(err) || err == UV_EOF)
        return uv_strerror(err);
    return "unknown error";
}

const char *bh_err_name(int err)
{
    for (size_t i = 0; i < BH_NERRORS; i++)
        if (bh_errors[i].code == err)
            return bh_errors[i].name;
    if (is_uv_code(err) || err == UV_EOF)
        return uv_err_name(err);
    return "UNKNOWN";
}
