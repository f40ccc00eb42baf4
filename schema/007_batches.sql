-- 007_batches: the refresh engine's claims and stores, many accounts per
-- statement, so a refresh storm costs a few statements per batch instead of
-- two round trips per account. Same fencing as tokend_claim and
-- tokend_store_tokens (005), row by row.

-- Claim every (id, version) pair that is claimable; returns those claimed.
CREATE OR REPLACE FUNCTION tokend_claim_many(p_ids uuid[], p_versions bigint[], p_owner text,
                                             p_lease_ms integer)
RETURNS TABLE (id uuid, access_token bytea, refresh_token bytea, app_password bytea,
               external_id text)
LANGUAGE sql AS $$
    UPDATE platform_accounts a
       SET lease_owner = p_owner,
           lease_expires_at = now() + p_lease_ms * interval '1 millisecond'
      FROM unnest(p_ids, p_versions) AS c(cid, cversion)
     WHERE a.id = c.cid AND a.token_version = c.cversion AND a.status = 'active'
       AND tokend_lease_free(a, p_owner)
    RETURNING a.id, a.access_token, a.refresh_token, a.app_password, a.external_id;
$$;

CREATE OR REPLACE FUNCTION tokend_store_many(p_ids uuid[], p_versions bigint[],
                                             p_access bytea[], p_refresh bytea[],
                                             p_access_expires double precision[],
                                             p_refresh_expires double precision[],
                                             p_cannot_extend boolean[])
RETURNS SETOF uuid
LANGUAGE sql AS $$
    UPDATE platform_accounts a
       SET access_token = s.access,
           refresh_token = coalesce(s.refresh, a.refresh_token),
           access_expires_at = to_timestamp(s.access_expires),
           refresh_expires_at = coalesce(to_timestamp(s.refresh_expires), a.refresh_expires_at),
           status = 'active',
           token_version = a.token_version + 1,
           token_issued_at = now(), last_refresh_at = now(),
           needs_exchange = false, cannot_extend = s.cannot_extend,
           failure_count = 0, last_error_code = NULL, next_attempt_at = NULL,
           refresh_requested_at = NULL, lease_owner = NULL, lease_expires_at = NULL
      FROM unnest(p_ids, p_versions, p_access, p_refresh, p_access_expires, p_refresh_expires,
                  p_cannot_extend)
           AS s(id, version, access, refresh, access_expires, refresh_expires, cannot_extend)
     WHERE a.id = s.id AND tokend_storable(a, s.version)
    RETURNING a.id;
$$;
