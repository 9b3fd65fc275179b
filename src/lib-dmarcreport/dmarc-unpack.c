#include "lib.h"
#include "dmarc-unpack.h"

/* stub: to be written */
