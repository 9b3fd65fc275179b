/* Unit tests for dmarc-archive.c. */

#include "lib.h"
#include "test-dmarc-common.h"
#include "dmarc-archive.h"

int main(void)
{
	static void (*const test_functions[])(void) = {
		NULL
	};
	return test_run(test_functions);
}
