-- Argo CD health check for xenclone XenHost (vm.xenclone.dev/v1alpha1).
--
-- Runs in Argo CD's Lua sandbox (base, table and package libraries only).
--
-- Healthy     the agent reports Ready=True (the host tools answer) and StorageHealthy is not
--             False.
-- Suspended   healthy but cordoned (spec.unschedulable: true): no new clones are placed.
-- Degraded    Ready is False or Unknown, or StorageHealthy is False.
-- Progressing the agent has not reported yet.
--
-- Liveness is the host's heartbeat Lease, which Argo CD cannot see: a host whose agent died
-- keeps its last report here. Its clones say NodeLost (Degraded in the VMClone check).

local hs = { status = "Progressing", message = "Waiting for the host agent's first report" }

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
  local out = tostring(c.reason)
  if c.message ~= nil and c.message ~= "" then
    out = out .. ": " .. c.message
  end
  return out
end

if obj.status == nil then
  return hs
end
local conds = obj.status.conditions
local ready = condition(conds, "Ready")
if ready == nil then
  return hs
end
if ready.status ~= "True" then
  hs.status = "Degraded"
  hs.message = "Host not ready: " .. describe(ready)
  return hs
end
local storage = condition(conds, "StorageHealthy")
if storage ~= nil and storage.status == "False" then
  hs.status = "Degraded"
  hs.message = "Storage unhealthy: " .. describe(storage)
  return hs
end

local clones = obj.status.clones or 0
local free = ""
if obj.status.memory ~= nil and obj.status.memory.freeMiB ~= nil then
  free = ", " .. obj.status.memory.freeMiB .. " MiB free"
end
if obj.spec ~= nil and obj.spec.unschedulable then
  hs.status = "Suspended"
  hs.message = "Cordoned (spec.unschedulable): no new clones are placed here; " .. clones .. " clone(s) stay" .. free
  return hs
end
hs.status = "Healthy"
hs.message = "Ready, " .. clones .. " clone(s)" .. free
if obj.status.xenVersion ~= nil then
  hs.message = hs.message .. ", Xen " .. obj.status.xenVersion
end
return hs
