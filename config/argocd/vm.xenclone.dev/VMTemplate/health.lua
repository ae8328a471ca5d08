-- Argo CD health check for xenclone VMTemplate (vm.xenclone.dev/v1alpha1).
--
-- Runs in Argo CD's Lua sandbox (base, table and package libraries only).
--
-- Healthy     Ready=True: the origin is present and read-only on at least one host.
-- Degraded    Ready=False: no host can take clones of it (origin missing, invalid
--             hostSelector), deletion is blocked by clones that still use it, or (a
--             template with spec.source) imports fail or no host is selected.
-- Progressing no status yet, a spec change the controller has not acted on yet, or the
--             source is still being imported and no host has it yet.

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
local st = obj.status
local conds = st.conditions

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  local inUse = condition(conds, "InUse")
  if inUse ~= nil and inUse.reason == "DeletionBlocked" then
    hs.status = "Degraded"
    hs.message = describe(inUse)
    return hs
  end
  hs.message = "Deleting"
  return hs
end

local gen = obj.metadata and obj.metadata.generation
if gen ~= nil and st.observedGeneration ~= nil and st.observedGeneration < gen then
  hs.message = "Waiting for the controller to act on spec generation " .. gen
  return hs
end

local imported = condition(conds, "Imported")
if imported ~= nil and imported.status ~= "True" and
    (imported.reason == "ImportFailing" or imported.reason == "NoHostSelected") then
  hs.status = "Degraded"
  hs.message = describe(imported)
  return hs
end

local ready = condition(conds, "Ready")
if ready == nil then
  return hs
end
if ready.status ~= "True" and ready.reason == "Importing" then
  hs.message = describe(ready)
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Origin ready"
  if st.clones ~= nil and st.clones > 0 then
    hs.message = hs.message .. "; " .. st.clones .. " clone(s)"
  end
  return hs
end
hs.status = "Degraded"
hs.message = describe(ready)
return hs
