-- Argo CD health of an aimm.io AIGateway, from the conditions the aimm operator writes.
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
for _, t in ipairs({"Stalled", "Degraded"}) do
  if is(t, "True") then
    hs.status = "Degraded"
    hs.message = cond(t).message
    return hs
  end
end
if is("ResolvedRefs", "False") then
  hs.status = "Degraded"
  hs.message = cond("ResolvedRefs").message
  return hs
end
if is("Reconciling", "True") or is("Progressing", "True") then
  hs.status = "Progressing"
  hs.message = (cond("Progressing") or cond("Reconciling")).message
  return hs
end
if is("Ready", "True") then
  hs.status = "Healthy"
  hs.message = cond("Ready").message
  return hs
end
local ready = cond("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
else
  hs.status = "Degraded"
  hs.message = ready.message
end
return hs
