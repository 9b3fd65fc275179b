#ifndef DMARC_COMPAT_H
#define DMARC_COMPAT_H
#endif
