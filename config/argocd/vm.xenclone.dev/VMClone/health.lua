-- Argo CD health check for xenclone VMClone (vm.xenclone.dev/v1alpha1).
--
-- Runs in Argo CD's Lua sandbox: only the base, table and package libraries are open for
-- custom health checks (no string library), so this script uses nothing else.
--
-- Healthy     Ready=True: the domain runs; or it is off by design (runStrategy Halted,
--             onExpiry Stop, or a Once/RerunOnFailure guest that powered itself off).
-- Progressing not there yet: Pending, Scheduled, Provisioning, Starting, Stopping,
--             Resetting, Terminating, or a spec change the agent has not acted on yet.
-- Degraded    needs a person: Failed, StorageAtRisk, host lost (NodeLost, or for a clone
--             that reschedules RescheduleWaitsForFence / HostNotFencing), or stuck on a
--             reason that does not fix itself (Unschedulable, TemplateNotFound, ...).

local hs = { status = "Progressing", message = "Waiting for the xenclone controller" }

-- Ready reasons of a clone whose host is lost (Ready=Unknown): NodeLost, and for a clone with
-- spec.placement.onNodeLost: Reschedule the wait for its host's agent to fence, or an agent
-- that does not fence.
local hostLost = { NodeLost = true, RescheduleWaitsForFence = true, HostNotFencing = true }

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

local function text(v)
  if v == nil then
    return ""
  end
  return tostring(v)
end

local function describe(c)
  if c == nil then
    return ""
  end
  if c.message ~= nil and c.message ~= "" then
    return text(c.reason) .. ": " .. text(c.message)
  end
  return text(c.reason)
end

-- Reasons that mean the clone is stuck until someone acts: the controller and the agent
-- retry, but only a change (capacity, a template, a Secret, a name) moves it on.
local blocked = {
  Unschedulable = true,
  TemplateNotFound = true,
  TemplateDeleting = true,
  NamespaceNotAllowed = true,
  MACConflict = true,
  DomainNameTaken = true,
  CloudInitDataMissing = true,
  OriginMissing = true,
  OriginRefused = true,
  VolumeNameConflict = true,
  DomainNameConflict = true,
  StorageError = true,
  PrepareFailed = true,
  StartFailed = true,
  SecretMissing = true,
  SnapshotInvalid = true,
  VolumeLost = true,
  GuestNotResponding = true,
}

if obj.status == nil then
  return hs
end
local st = obj.status
local conds = st.conditions
-- The host agent's report (phase, message, its conditions) counts only if it describes the
-- clone's current binding: after a reschedule the old host's report stays until the new
-- host's agent replaces it.
local reportCurrent = st.nodeName ~= nil and st.nodeName ~= "" and
  (st.observedBindingGeneration or 0) == (st.bindingGeneration or 0)
if not reportCurrent then
  local own = {}
  for _, c in ipairs(conds or {}) do
    if c.type == "Scheduled" or c.type == "Ready" or c.type == "Expired" then
      table.insert(own, c)
    end
  end
  conds = own
  st = { nodeName = st.nodeName, conditions = own, phase = "Pending" }
end
local phase = text(st.phase)
local node = text(st.nodeName)
local ready = condition(conds, "Ready")
local spec = obj.spec or {}
local strategy = spec.runStrategy or "Always"

-- Deletion: the host agent removes the domain and the snapshot, then releases the finalizer.
if (obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil) or phase == "Terminating" then
  if ready ~= nil and hostLost[text(ready.reason)] then
    hs.status = "Degraded"
    hs.message = "Deletion is blocked: the clone's host is lost. " .. text(ready.message)
    return hs
  end
  hs.status = "Progressing"
  hs.message = "Terminating: " .. (st.message or "removing the domain and its disk")
  return hs
end

-- A stale heartbeat: nobody knows what the domain does. Checked before observedGeneration,
-- which a lost host's agent can never catch up with.
if phase == "Unknown" or (ready ~= nil and ready.status == "Unknown") then
  hs.status = "Degraded"
  if ready ~= nil then
    hs.message = "Host " .. node .. " lost, state unknown. " .. describe(ready)
  else
    hs.message = "Host " .. node .. " lost, state unknown: " .. text(st.message)
  end
  return hs
end

-- A spec change neither the controller nor the host agent has acted on yet.
local gen = obj.metadata and obj.metadata.generation
if gen ~= nil then
  if st.observedGeneration ~= nil and st.observedGeneration < gen then
    hs.status = "Progressing"
    hs.message = "Waiting for the host agent to act on spec generation " .. gen ..
      " (observed " .. st.observedGeneration .. ")"
    return hs
  end
  if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < gen then
    hs.status = "Progressing"
    hs.message = "Waiting for the controller to act on spec generation " .. gen
    return hs
  end
end

if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Failed: " .. (st.message or describe(ready))
  return hs
end

local risk = condition(conds, "StorageAtRisk")
if risk ~= nil and risk.status == "True" then
  hs.status = "Degraded"
  hs.message = "Storage at risk: " .. describe(risk)
  return hs
end

local scheduled = condition(conds, "Scheduled")
if scheduled ~= nil and scheduled.status == "False" then
  hs.status = "Degraded"
  hs.message = "Not scheduled: " .. describe(scheduled)
  return hs
end
for _, t in ipairs({ "VolumeReady", "GuestPrepared", "DomainRunning" }) do
  local c = condition(conds, t)
  if c ~= nil and c.status == "False" and blocked[c.reason] then
    hs.status = "Degraded"
    hs.message = t .. " " .. describe(c)
    return hs
  end
end
if ready ~= nil and ready.status == "False" and blocked[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready)
  return hs
end

-- The agent's phase is fresher than the controller's Ready: a Halted clone whose domain is
-- still shutting down is already Ready (its disk is prepared) but not done yet.
local transitional = {
  Pending = true, Scheduled = true, Provisioning = true, Starting = true, Stopping = true, Resetting = true,
}
-- A clone off by design is done once its domain is gone, whatever phase the agent last
-- wrote (a guest that powered off on request may be reported as Starting/Restarting).
local dom = condition(conds, "DomainRunning")
local offByDesign = ready ~= nil and (ready.reason == "Halted" or ready.reason == "StoppedOnExpiry")
local domainGone = dom == nil or (dom.status == "False" and dom.reason ~= "ShuttingDown")
if offByDesign and domainGone and phase ~= "Resetting" then
  transitional[phase] = nil
end
if ready ~= nil and ready.status == "True" and not transitional[phase] then
  hs.status = "Healthy"
  if ready.reason == "Halted" then
    hs.message = "Halted by design (runStrategy: Halted): disk prepared on " .. node
  elseif ready.reason == "StoppedOnExpiry" then
    hs.message = "Stopped on expiry (onExpiry: Stop): disk kept on " .. node
  else
    hs.message = "Running on " .. node
    if st.domain ~= nil and st.domain.name ~= nil then
      hs.message = hs.message .. " as domain " .. st.domain.name
    end
  end
  return hs
end

-- A guest that ended by itself where the run strategy does not restart it: powered off is
-- the end the user asked for; a crash is not.
if phase == "Stopped" and dom ~= nil and (strategy == "Once" or strategy == "RerunOnFailure") then
  if dom.reason == "GuestPoweredOff" then
    hs.status = "Healthy"
    hs.message = "The guest powered off and stays off (runStrategy: " .. strategy .. ")"
    return hs
  end
  if dom.reason == "GuestCrashed" then
    hs.status = "Degraded"
    hs.message = "The guest crashed and runStrategy " .. strategy ..
      " does not restart it: " .. text(dom.message) .. "; reset or recreate the clone"
    return hs
  end
end

hs.status = "Progressing"
if phase == "" then
  phase = "Pending"
end
if st.message ~= nil and st.message ~= "" then
  hs.message = phase .. ": " .. st.message
elseif ready ~= nil then
  hs.message = phase .. ": " .. describe(ready)
else
  hs.message = phase
end
return hs
