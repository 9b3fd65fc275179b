#include "lib.h"
#include "dmarc-store.h"

/* stub: to be written */
