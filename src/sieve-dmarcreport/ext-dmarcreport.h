#ifndef EXT_DMARCREPORT_H
#define EXT_DMARCREPORT_H

#endif
