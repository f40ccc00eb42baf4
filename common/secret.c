/* secret: wipe-on-free plaintext buffers. */
#include "common/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECRET_FILE_MAX 65536

void secret_free(struct secret *s)
{
	if (!s)
		return;
	if (s->data) {
		OPENSSL_cleanse(s->data, s->len);
		free(s->data);
	}
	s->data = NULL;
	s->len = 0;
}

int secret_set(struct secret *s, const void *data, size_t len)
{
	uint8_t *copy = malloc(len + 1);
	if (!copy)
		return -1;
	memcpy(copy, data, len);
	copy[len] = 0;
	secret_free(s);
	s->data = copy;
	s->len = len;
	return 0;
}

bool secret_empty(const struct secret *s)
{
	return !s || !s->data || s->len == 0;
}

static ssize_t read_all(int fd, uint8_t *buf, size_t cap)
{
	size_t got = 0;
	while (got < cap) {
		ssize_t n = read(fd, buf + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int secret_read_file(const char *path, struct secret *out, char *err, size_t errlen)
{
	uint8_t buf[SECRET_FILE_MAX + 1];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	ssize_t n = read_all(fd, buf, sizeof(buf));
	int saved = errno;
	close(fd);
	int rc = -1;
	if (n < 0)
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(saved));
	else if (n > SECRET_FILE_MAX)
		snprintf(err, errlen, "%s: larger than %d bytes", path, SECRET_FILE_MAX);
	else {
		size_t len = (size_t)n;
		while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
			len--;
		rc = secret_set(out, buf, len);
		if (rc < 0)
			snprintf(err, errlen, "out of memory");
	}
	OPENSSL_cleanse(buf, sizeof(buf));
	return rc;
}
