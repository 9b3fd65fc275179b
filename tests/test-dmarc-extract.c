/* Unit tests for dmarc-extract.c. */

#include "lib.h"
#include "test-dmarc-common.h"
#include "dmarc-extract.h"

int main(void)
{
	static void (*const test_functions[])(void) = {
		NULL
	};
	return test_run(test_functions);
}
