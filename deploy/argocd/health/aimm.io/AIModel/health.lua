-- Argo CD health of an aimm.io AIModel, from the conditions the aimm operator writes.
-- Runs in Argo CD's Lua (5.1 semantics); `obj` is the live object.
-- Argo CD loads each health script on its own, so the two helpers repeat in every kind's file.
local function cond(t)
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do
      if c.type == t then return c end
    end
  end
  return nil
end

local function is(t, value)
  local c = cond(t)
  return c ~= nil and c.status == value
end

local hs = {}
local gen = obj.metadata.generation or 0
if obj.status == nil or (obj.status.observedGeneration or 0) < gen then
  hs.status = "Progressing"
  hs.message = "Waiting for the aimm operator to reconcile generation " .. gen
  return hs
end
for _, t in ipairs({"Stalled", "ResolvedRefs"}) do
  local c = cond(t)
  if c ~= nil and c.status == (t == "Stalled" and "True" or "False") then
    hs.status = "Degraded"
    hs.message = c.message
    return hs
  end
end
if is("Reconciling", "True") then
  hs.status = "Progressing"
  hs.message = cond("Reconciling").message
  return hs
end
-- Live traffic: a model its gateways can't reach is degraded; a disabled one is suspended.
local available = cond("Available")
if available ~= nil and available.status == "False" then
  hs.status = available.reason == "Disabled" and "Suspended" or "Degraded"
  hs.message = available.message
  return hs
end
local ready = cond("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
elseif ready.status == "True" or ready.reason == "NotSelected" then
  -- Valid but not (yet) used by any AIGateway is not a fault of this object.
  hs.status = "Healthy"
  hs.message = ready.message
else
  hs.status = "Degraded"
  hs.message = ready.message
end
return hs
