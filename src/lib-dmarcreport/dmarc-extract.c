#include "lib.h"
#include "dmarc-extract.h"

/* stub: to be written */
