-- stg_gpu_samples: one row per GPU (hw.id) per agent sample, metrics pivoted to columns.
-- A field the GPU does not support is NULL (the agent does not send it), never 0.
CREATE OR REPLACE VIEW stg_gpu_samples AS
SELECT
    host_name,
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
    bool_or(coalesce(resource_attributes['inferledger.simulated'], 'false') = 'true') AS simulated
FROM raw_metric_points
WHERE metric_name IN ('hw.energy', 'hw.power', 'hw.gpu.memory.usage', 'hw.gpu.memory.limit',
                      'hw.gpu.utilization', 'inferledger.gpu.power.limit', 'hw.temperature',
                      'inferledger.gpu.clock.sm', 'inferledger.gpu.clock_event_reasons')
  AND attributes['hw.id'] IS NOT NULL
GROUP BY host_name, attributes['hw.id'], time_unix_nano;

-- stg_gpu_processes: which host PIDs held memory on which GPU at each sample (placement),
-- with the container and Kubernetes pod the agent found them in (NULL outside one).
CREATE OR REPLACE VIEW stg_gpu_processes AS
SELECT DISTINCT
    host_name,
    attributes['hw.id']                                AS gpu_uuid,
    TRY_CAST(attributes['process.pid'] AS BIGINT)      AS pid,
    attributes['container.id']                         AS container_id,
    attributes['k8s.pod.uid']                          AS pod_uid,
    time_unix_nano / 1e9                               AS ts_s,
    value                                              AS memory_used_bytes
FROM raw_metric_points
WHERE metric_name = 'inferledger.gpu.process.memory.usage';
