-- Argo CD health of a LeaderWorkerSet (leaderworkerset.x-k8s.io/v1): Progressing until every group is ready.
-- Contract (argo-cd docs/operator-manual/health.md): `obj` is the resource, return {status, message}; the standard
-- Lua libraries are off by default, so only base functions (tostring, ipairs) are used.
-- Fields (kubernetes-sigs/lws api/leaderworkerset/v1/leaderworkerset_types.go): status.observedGeneration,
-- readyReplicas and updatedReplicas (groups; omitted when 0), conditions Available, Progressing and
-- UpdateInProgress, set by updateConditions in pkg/controllers/leaderworkerset_controller.go: Available once every
-- group is ready and updated, UpdateInProgress during a rolling update. LWS has no failure condition: a group that
-- never starts stays Progressing (`helm rdma status` and `diagnose` say why).
local hs = {}
local wanted = 1
if obj.spec ~= nil and obj.spec.replicas ~= nil then
  wanted = obj.spec.replicas
end
local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the LeaderWorkerSet controller"
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the LeaderWorkerSet controller to observe generation " .. tostring(generation)
  return hs
end
local ready = status.readyReplicas or 0
local updated = status.updatedReplicas or 0
local conditions = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    conditions[condition.type] = condition.status
  end
end
local groups = tostring(ready) .. "/" .. tostring(wanted) .. " groups ready"
if conditions["UpdateInProgress"] == "True" then
  hs.status = "Progressing"
  hs.message = "Rolling update: " .. tostring(updated) .. "/" .. tostring(wanted) .. " groups updated, " .. groups
  return hs
end
if conditions["Available"] == "True" and ready >= wanted then
  hs.status = "Healthy"
  hs.message = groups
  return hs
end
hs.status = "Progressing"
hs.message = groups
return hs
