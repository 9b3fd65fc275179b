#ifndef DMARC_QUERY_H
#define DMARC_QUERY_H

/* Read side of the store for doveadm dmarc: filters and result rows.
   All SQL lives in dmarc-query.c; values are bound as parameters. */

struct dmarc_store;

#endif
