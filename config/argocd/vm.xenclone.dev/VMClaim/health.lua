-- Argo CD health check for xenclone VMClaim (vm.xenclone.dev/v1alpha1).
--
-- Runs in Argo CD's Lua sandbox (base, table and package libraries only).
--
-- Healthy     bound, and Ready: the claim's VM runs with its data (or was stopped at the end
--             of its lifetime, onExpiry: Stop).
-- Degraded    a reason that needs a person: the pool or template is missing, the clone was
--             deleted behind the claim's back, the Secret named in spec.data is missing.
-- Progressing everything else: waiting for a warm member, a cold clone starting, a paused
--             member resuming, the data on its way.

local hs = { status = "Progressing", message = "Waiting for the xenclone controller" }

-- Reasons that stay until someone acts (api/v1alpha1/conditions.go: Blocked or Stalled).
local needsPerson = {
  PoolNotFound = true,
  TemplateNotFound = true,
  CloneLost = true,
  ClaimDataMissing = true,
}

local function condition(conds, t)
  if conds == nil then
    return nil
  end
  for _, c in ipairs(conds) do
    if c.type == t then
      return c
    end
  end
  return nil
end

local function describe(c)
  local m = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    m = m .. ": " .. c.message
  end
  return m
end

if obj.status == nil then
  return hs
end
local st = obj.status

for _, c in ipairs(st.conditions or {}) do
  if c.status ~= "True" and needsPerson[c.reason] then
    hs.status = "Degraded"
    hs.message = describe(c)
    return hs
  end
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting the claim and its VM"
  return hs
end

local ready = condition(st.conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
local bound = condition(st.conditions, "Bound")
if bound ~= nil and bound.status ~= "True" then
  hs.message = describe(bound)
  return hs
end
if ready ~= nil then
  hs.message = describe(ready)
end
return hs
