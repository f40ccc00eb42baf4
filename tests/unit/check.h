/* check: the unit tests' assertions. A failed check prints file:line and
 * what was expected, and exits 1 (ctest reports the test as failed). */
#ifndef TOKEND_CHECK_H
#define TOKEND_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#define CHECK_STR(got, want)                                                                       \
	do {                                                                                       \
		const char *got_ = (got), *want_ = (want);                                         \
		if (!got_ || !want_ || strcmp(got_, want_) != 0) {                                 \
			fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__,    \
			        got_ ? got_ : "(null)", want_ ? want_ : "(null)");                 \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

#endif
