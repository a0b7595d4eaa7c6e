/* host_name.c - see host_name.h. */
#include "host_name.h"

int host_name_ok(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                 (c == '.' && s[i - 1] != '.');
        if (!ok)
            return 0;
    }
    return 1;
}
