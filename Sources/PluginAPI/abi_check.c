/* Compile-time checks of the ABI header: it must build as plain C11 with no other header. */
#include "atrium_plugin.h"

_Static_assert(sizeof(atrium_version_t) == 4, "atrium_version_t is two uint16_t");
_Static_assert(ATRIUM_ABI_VERSION_MAJOR == 1, "this tree implements ABI 1");
