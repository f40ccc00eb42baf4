/* control: the test-facing API under /_control/ (faults, stats, revoke,
 * reset, pages, account); JSON in, JSON out. See README.md. */
#ifndef FAKE_CONTROL_H
#define FAKE_CONTROL_H

#include "tests/fake/fake.h"

/* Answers req, whose path starts with "/_control/". */
void control_handle(struct fake *fake, struct evhttp_request *req, const char *path);

#endif
