#include "lib.h"
#include "dmarc-archive.h"

/* stub: to be written */
