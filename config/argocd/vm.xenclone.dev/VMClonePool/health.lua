-- Argo CD health check for xenclone VMClonePool (vm.xenclone.dev/v1alpha1).
--
-- Runs in Argo CD's Lua sandbox (base, table and package libraries only).
--
-- Healthy     every wanted member exists and is Ready (Halted members count as ready),
--             or the pool is scaled to zero and has no members left.
-- Progressing scaling (members being created or deleted), members not ready yet, a rollout
--             of a changed spec.template (updateStrategy Recreate), or a spec change (e.g.
--             kubectl scale) the controller has not acted on yet.
-- The pool only counts its members; why a member is stuck shows on that member (a VMClone,
-- with its own health) in the Argo CD resource tree.

local hs = { status = "Progressing", message = "Waiting for the xenclone controller" }

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

if obj.status == nil then
  return hs
end
local st = obj.status
local spec = obj.spec or {}
local want = spec.replicas
if want == nil then
  want = 1
end
local have = st.replicas or 0
local readyCount = st.readyReplicas or 0

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Deleting the pool and its " .. have .. " member(s)"
  return hs
end

local gen = obj.metadata and obj.metadata.generation
if gen ~= nil and (st.observedGeneration == nil or st.observedGeneration < gen) then
  hs.message = "Waiting for the controller to act on spec generation " .. gen ..
    " (" .. readyCount .. "/" .. want .. " members ready)"
  return hs
end

if have ~= want then
  hs.message = "Scaling: " .. have .. " of " .. want .. " members exist, " .. readyCount .. " ready"
  return hs
end
if readyCount < want then
  hs.message = readyCount .. " of " .. want .. " members ready"
  local ready = condition(st.conditions, "Ready")
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    hs.message = ready.message
  end
  return hs
end

local ready = condition(st.conditions, "Ready")
if ready ~= nil and ready.status ~= "True" and ready.reason == "RollingOut" then
  hs.message = ready.message or "Rolling out spec.template"
  return hs
end

hs.status = "Healthy"
if want == 0 then
  hs.message = "Scaled to zero"
else
  hs.message = "All " .. want .. " members ready"
end
return hs
