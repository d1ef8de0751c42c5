-- stg_gpu_samples: one row per GPU (hw.id) per agent sample, metrics pivoted to columns.
-- A field the GPU does not support is NULL (the agent does not send it), never 0.
-- `source` is the agent that sent it (its OTel service.instance.id, else its host): two
-- sources for one GPU is a measurement to question, not to add up.
CREATE OR REPLACE VIEW stg_gpu_samples AS
SELECT
    host_name,
    coalesce(resource_attributes['service.instance.id'], host_name)           AS source,
    min(received_at_unix_nano)                                                AS received_at_unix_nano,
    attributes['hw.id']                                                       AS gpu_uuid,
    any_value(attributes['hw.model'])                                         AS gpu_model,
    time_unix_nano / 1e9                                                      AS ts_s,
    max(value) FILTER (WHERE metric_name = 'hw.energy')                       AS energy_j,
    max(value) FILTER (WHERE metric_name = 'hw.power')                        AS power_w,
    max(value) FILTER (WHERE metric_name = 'hw.gpu.memory.usage')             AS memory_used_bytes,
    max(value) FILTER (WHERE metric_name = 'hw.gpu.memory.limit')             AS memory_total_bytes,
    max(value) FILTER (WHERE metric_name = 'hw.gpu.utilization')              AS utilization,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.power.limit')     AS power_limit_w,
    max(value) FILTER (WHERE metric_name = 'hw.temperature')                  AS temperature_c,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.clock.sm')        AS sm_clock_mhz,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.clock_event_reasons')
                                                                              AS clock_event_reasons,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.sm.active')       AS sm_active,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.sm.occupancy')    AS sm_occupancy,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.tensor.active')   AS tensor_active,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.dram.active')     AS dram_active,
    bool_or(coalesce(resource_attributes['inferledger.simulated'], 'false') = 'true') AS simulated
FROM raw_metric_points
WHERE metric_name IN ('hw.energy', 'hw.power', 'hw.gpu.memory.usage', 'hw.gpu.memory.limit',
                      'hw.gpu.utilization', 'inferledger.gpu.power.limit', 'hw.temperature',
                      'inferledger.gpu.clock.sm', 'inferledger.gpu.clock_event_reasons',
                      'inferledger.gpu.sm.active', 'inferledger.gpu.sm.occupancy',
                      'inferledger.gpu.tensor.active', 'inferledger.gpu.dram.active')
  AND attributes['hw.id'] IS NOT NULL
GROUP BY host_name, coalesce(resource_attributes['service.instance.id'], host_name),
         attributes['hw.id'], time_unix_nano;

-- stg_gpu_processes: which host PIDs held memory on which GPU at each sample (placement),
-- with the container and Kubernetes pod the agent found them in (NULL outside one) and,
-- on a MIG-partitioned GPU, the instance they run in. `owner_pids`: the process and its
-- ancestors, any of which may be the one a request span names (vLLM V1's worker holds the
-- GPU; its grandparent, the API server, serves).
CREATE OR REPLACE VIEW stg_gpu_processes AS
SELECT DISTINCT
    host_name,
    attributes['hw.id']                                AS gpu_uuid,
    attributes['inferledger.gpu.mig_id']               AS mig_uuid,
    TRY_CAST(attributes['process.pid'] AS BIGINT)      AS pid,
    list_prepend(TRY_CAST(attributes['process.pid'] AS BIGINT),
                 coalesce(TRY_CAST(string_split(attributes['inferledger.process.ancestor_pids'],
                                                ',') AS BIGINT[]), []))   AS owner_pids,
    attributes['container.id']                         AS container_id,
    attributes['k8s.pod.uid']                          AS pod_uid,
    time_unix_nano / 1e9                               AS ts_s,
    value                                              AS memory_used_bytes
FROM raw_metric_points
WHERE metric_name = 'inferledger.gpu.process.memory.usage';

-- stg_gpu_mig_instances: each MIG instance of a partitioned GPU at each sample, under its
-- parent GPU (power and energy are measured for the parent only).
CREATE OR REPLACE VIEW stg_gpu_mig_instances AS
SELECT
    host_name,
    attributes['hw.parent_id']                                                    AS gpu_uuid,
    attributes['hw.id']                                                           AS mig_uuid,
    TRY_CAST(attributes['inferledger.gpu.instance_id'] AS INTEGER)                AS gpu_instance_id,
    time_unix_nano / 1e9                                                          AS ts_s,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.mig.memory.usage')    AS memory_used_bytes,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.mig.memory.limit')    AS memory_total_bytes
FROM raw_metric_points
WHERE metric_name IN ('inferledger.gpu.mig.memory.usage', 'inferledger.gpu.mig.memory.limit')
GROUP BY ALL;

-- stg_gpu_health: per GPU and agent cycle, whether the GPU answered (hw.status ok / failed)
-- and how many samples a hung NVML call has cost it so far.
CREATE OR REPLACE VIEW stg_gpu_health AS
SELECT
    host_name,
    attributes['hw.id']                                                           AS gpu_uuid,
    time_unix_nano / 1e9                                                          AS ts_s,
    arg_max(attributes['hw.state'], value) FILTER (WHERE metric_name = 'hw.status') AS state,
    max(value) FILTER (WHERE metric_name = 'inferledger.agent.late_samples')       AS late_samples
FROM raw_metric_points
WHERE metric_name IN ('hw.status', 'inferledger.agent.late_samples')
GROUP BY ALL;
