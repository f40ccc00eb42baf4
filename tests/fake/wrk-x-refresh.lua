-- wrk script: chains of X refreshes against fake_platforms. Each answer's
-- refresh_token is presented by a later request, so every request is a real
-- rotation; /_control/stats must then show reuse 0 and dead 0.
--   wrk -t1 -c32 -d5s -s tests/fake/wrk-x-refresh.lua http://127.0.0.1:PORT/x/2/oauth2/token
-- (one wrk thread: the token queue is per thread; POST /_control/reset between runs,
-- or the x-chain-N seeds of an earlier run count as reuse).
local queue, seeds = {}, 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic Y2lkOnNlYw==" -- cid:sec

request = function()
  local token = table.remove(queue)
  if token == nil then
    seeds = seeds + 1
    token = "x-chain-" .. seeds
  end
  return wrk.format(nil, "/x/2/oauth2/token", nil,
    "grant_type=refresh_token&refresh_token=" .. token .. "&client_id=cid")
end

response = function(status, headers, body)
  local token = body:match('"refresh_token":"([^"]+)"')
  if token then
    table.insert(queue, token)
  end
end
