-- mart_gpu_time: every measured GPU-second and joule, per GPU and hour, in exactly one bucket:
-- useful (requests that succeeded), failed, aborted by the client, timed out, preempted
-- (prompt tokens the engine recomputed after preempting requests), model loading (an engine
-- starting up), idle (no request active and the GPU not busy) and unaccounted (no request
-- placed on it, yet the GPU reported utilization > 5%).
-- The kernel (analytics/attribution.py) fills the buckets; this prices them.
CREATE OR REPLACE TEMP TABLE mart_gpu_time AS
SELECT
    g.host_name, g.gpu_uuid, g.gpu_model, to_timestamp(k."window") AS hour,
    coalesce(s.simulated, false) AS simulated,
    k.measured_s, k.measured_j,
    k.useful_s, k.failed_s, k.aborted_s, k.timed_out_s, k.preempted_s, k.model_loading_s,
    k.idle_s, k.unaccounted_s,
    k.useful_j, k.failed_j, k.aborted_j, k.timed_out_j, k.preempted_j, k.model_loading_j,
    k.idle_j, k.unaccounted_j,
    p.usd_per_gpu_hour,
    k.measured_s * p.usd_per_gpu_hour / 3600.0
        + k.measured_j / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh') AS cost_usd,
    k.idle_s * p.usd_per_gpu_hour / 3600.0
        + k.idle_j / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh')     AS idle_cost_usd,
    getvariable('pricing_version')                                              AS pricing_version
FROM kernel_windows k
JOIN int_gpus g USING (gpu_idx)
LEFT JOIN pricing_gpu p USING (gpu_model)
LEFT JOIN (SELECT gpu_uuid, bool_or(simulated) AS simulated FROM int_gpu_intervals
           GROUP BY gpu_uuid) s USING (gpu_uuid);
