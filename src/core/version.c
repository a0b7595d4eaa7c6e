/* version.c - runtime version of the linked library. */
#include <bytes_handoff.h>

#define BH_STR2(x) #x
#define BH_STR(x) BH_STR2(x)

unsigned bh_version(void) { return BH_VERSION_HEX; }

const char *bh_version_string(void)
{
    return BH_STR(BH_VERSION_MAJOR) "." BH_STR(BH_VERSION_MINOR) "." BH_STR(BH_VERSION_PATCH);
}
