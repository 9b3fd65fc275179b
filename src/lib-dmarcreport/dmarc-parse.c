#include "lib.h"
#include "dmarc-parse.h"

/* stub: to be written */
