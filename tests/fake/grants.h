/* grants: the fake's account state. A grant is one authorisation of one
 * account on one platform: the generations of its current tokens, whether it
 * was revoked, and counters.
 *
 * Tokens the fake issues name their grant, so none is stored:
 *   <platform>-<kind>.<grant>.<generation>.<issued-at>.<epoch>
 * (Bluesky: an HS256 JWT whose jti is that string). A token never seen
 * before that starts with "<platform>-" is adopted as a new grant ("adopt on
 * first sight"); it is the grant's stable key. The epoch changes on reset, so
 * tokens issued before a reset are unseen afterwards. */
#ifndef FAKE_GRANTS_H
#define FAKE_GRANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tests/fake/fake.h"

#define TOKEN_MAX 1024
#define GRANT_PAGES_MAX 64 /* Facebook Pages one user manages, at most */

enum token_kind { KIND_ANY = 0, KIND_ACCESS = 'a', KIND_REFRESH = 'r', KIND_PAGE = 'p' };

/* The current tokens of a grant, as values: a dry run works on a copy. */
struct session {
	uint32_t access_gen, refresh_gen;
	int64_t access_iat, refresh_iat;
	int64_t rotated_at; /* when refresh_gen last advanced; 0 = never */
};

struct grant {
	uint32_t id;
	enum plat_id plat;
	char seed_kind;  /* kind of the adopted token (generation 0), or 0 */
	bool revoked;    /* its tokens are dead */
	bool locked;     /* Bluesky: the app password is dead too */
	bool takedown;   /* Bluesky: account taken down */
	char *key;       /* owned: the adopted token, or "id:<identifier>" */
	char *password;  /* owned: Bluesky app password, or NULL */
	char did[40];    /* did:plc:..., stable per key (also TikTok's open_id) */
	int64_t created; /* first grant: non-rotating refresh tokens expire from here */
	struct session s;
	uint32_t pages;  /* Facebook Pages the user manages */
	uint64_t reuse;  /* presentations of a rotated refresh token */
	int64_t *logins; /* Bluesky createSession times, a ring; NULL until used */
	unsigned login_next;
};

/* What a presented token names. */
struct token_ref {
	struct grant *grant;
	char kind;
	uint32_t gen; /* page index for KIND_PAGE */
	int64_t iat;
	bool adopted; /* the grant's seed token */
};

enum verdict {
	VERDICT_OK,
	VERDICT_GRACE,      /* Bluesky: rotated refreshJwt within its grace period */
	VERDICT_UNKNOWN,    /* not a token of this platform */
	VERDICT_WRONG_KIND, /* e.g. an access token where a refresh token goes */
	VERDICT_REVOKED,
	VERDICT_TAKEDOWN,
	VERDICT_EXPIRED,
	VERDICT_SPENT,   /* rotated refresh token, past any grace */
	VERDICT_NO_PAGE, /* page token of a Page the user no longer manages */
};

enum rotation {
	ROTATE_ACCESS, /* new access token; the refresh token stays */
	ROTATE_BOTH,   /* new access and refresh tokens; the old refresh token is spent */
};

/* Borrows cfg, which must outlive the grants. NULL on allocation failure. */
struct grants *grants_new(const struct fake_config *cfg);
void grants_free(struct grants *g);
/* Forgets every grant and starts a new epoch. */
void grants_reset(struct grants *g);

/* Judges a token presented to a platform endpoint that expects `kind`
 * (KIND_ANY: access or page). Adopts unseen "<platform>-" tokens. Fills ref
 * whenever the token names a grant, and counts reuse of spent tokens in the
 * grant (and revokes it under --reuse-revokes). */
enum verdict grants_check(struct grants *g, enum plat_id plat, char kind, const char *token,
                          int64_t now, struct token_ref *ref);
/* Resolves any token ever issued or adopted, of any platform, without adopting. */
bool grants_find(struct grants *g, const char *token, struct token_ref *ref);
/* The grant whose key is key, or NULL. */
struct grant *grants_by_key(struct grants *g, const char *key);
/* A new grant keyed by key (copied). NULL on allocation failure. */
struct grant *grants_add(struct grants *g, enum plat_id plat, const char *key, char seed_kind,
                         int64_t now);
/* The platform named by a token's "<platform>-" prefix, or -1. */
int grants_platform_of(const char *token);

/* The session that a refresh of gr at now would produce. */
struct session grants_next(const struct grant *gr, enum rotation how, int64_t now);
/* Writes gr's token of `kind` in session s into buf. -1 when buf is too small. */
int grants_token(const struct grants *g, const struct grant *gr, const struct session *s, char kind,
                 char *buf, size_t size) __attribute__((warn_unused_result));
/* Writes the token of gr's Page `page`, issued at now. */
int grants_page_token(const struct grants *g, const struct grant *gr, uint32_t page, int64_t now,
                      char *buf, size_t size) __attribute__((warn_unused_result));
/* When gr's token of `kind` in session s expires (Unix seconds); 0 = never. */
int64_t grants_expires_at(const struct grants *g, const struct grant *gr, const struct session *s,
                          char kind);
/* Bluesky createSession rate limit: records an attempt at now and says
 * whether it is allowed; when not, *retry_after is the wait in seconds. */
bool grants_login_allowed(struct grants *g, struct grant *gr, int64_t now, int *retry_after);
size_t grants_count(const struct grants *g, enum plat_id plat);

#endif
