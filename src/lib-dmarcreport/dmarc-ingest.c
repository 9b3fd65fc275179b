#include "lib.h"
#include "dmarc-ingest.h"

/* stub: to be written */
