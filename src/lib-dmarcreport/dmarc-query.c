#include "lib.h"
#include "dmarc-query.h"

/* stub: to be written */
