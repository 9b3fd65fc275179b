/* Unit tests for dmarc-unpack.c. */

#include "lib.h"
#include "test-dmarc-common.h"
#include "dmarc-unpack.h"

int main(void)
{
	static void (*const test_functions[])(void) = {
		NULL
	};
	return test_run(test_functions);
}
