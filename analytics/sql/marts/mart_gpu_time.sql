--! publish: gpu_time
--! day_key: epoch(hour)
-- mart_gpu_time: every measured GPU-second and joule, per GPU and hour, in exactly one bucket:
-- useful (requests that succeeded), failed, aborted by the client, timed out, preempted
-- (prompt tokens the engine recomputed after preempting requests), model loading (an engine
-- starting up), idle (no request active and the GPU not busy), unaccounted (the GPU reported
-- more utilization than the requests on it explain), and unmeasured (intervals that failed
-- int_gpu_intervals' checks, with their reasons: shown, never priced).
-- The kernel (analytics/attribution.py) fills the attributed buckets; this adds the
-- quarantined intervals and prices what was measured and checked.
CREATE OR REPLACE TEMP TABLE mart_gpu_time AS
WITH k AS (
    SELECT g.gpu_uuid, to_timestamp(k."window") AS hour, k.* EXCLUDE (gpu_idx, "window")
    FROM kernel_windows k JOIN int_gpus g USING (gpu_idx)
),
q AS (
    SELECT gpu_uuid, hour, sum(measured_s) AS unmeasured_s, sum(measured_j) AS unmeasured_j,
           count(*) AS unmeasured_intervals,
           string_agg(DISTINCT quarantine_reason, ', ' ORDER BY quarantine_reason)
               AS unmeasured_reasons
    FROM int_gpu_intervals WHERE quarantine_reason IS NOT NULL
    GROUP BY ALL
),
b AS (
    SELECT gpu_uuid, hour,
           coalesce(k.measured_s, 0) + coalesce(q.unmeasured_s, 0) AS measured_s,
           coalesce(k.measured_j, 0) + coalesce(q.unmeasured_j, 0) AS measured_j,
           k.* EXCLUDE (gpu_uuid, hour, measured_s, measured_j),
           coalesce(q.unmeasured_s, 0) AS unmeasured_s, coalesce(q.unmeasured_j, 0) AS unmeasured_j,
           coalesce(q.unmeasured_intervals, 0) AS unmeasured_intervals, q.unmeasured_reasons
    FROM k FULL JOIN q USING (gpu_uuid, hour)
)
SELECT
    g.host_name, b.gpu_uuid, g.gpu_model, b.hour,
    coalesce(s.simulated, false) AS simulated,
    b.measured_s, b.measured_j,
    coalesce(b.useful_s, 0) AS useful_s, coalesce(b.failed_s, 0) AS failed_s,
    coalesce(b.aborted_s, 0) AS aborted_s, coalesce(b.timed_out_s, 0) AS timed_out_s,
    coalesce(b.preempted_s, 0) AS preempted_s, coalesce(b.model_loading_s, 0) AS model_loading_s,
    coalesce(b.idle_s, 0) AS idle_s, coalesce(b.unaccounted_s, 0) AS unaccounted_s,
    b.unmeasured_s,
    coalesce(b.useful_j, 0) AS useful_j, coalesce(b.failed_j, 0) AS failed_j,
    coalesce(b.aborted_j, 0) AS aborted_j, coalesce(b.timed_out_j, 0) AS timed_out_j,
    coalesce(b.preempted_j, 0) AS preempted_j, coalesce(b.model_loading_j, 0) AS model_loading_j,
    coalesce(b.idle_j, 0) AS idle_j, coalesce(b.unaccounted_j, 0) AS unaccounted_j,
    b.unmeasured_j, b.unmeasured_intervals, b.unmeasured_reasons,
    p.usd_per_gpu_hour,
    (b.measured_s - b.unmeasured_s) * p.usd_per_gpu_hour / 3600.0
        + (b.measured_j - b.unmeasured_j) / 3.6e6 * getvariable('pue')
          * getvariable('usd_per_kwh')                                          AS cost_usd,
    coalesce(b.idle_s, 0) * p.usd_per_gpu_hour / 3600.0
        + coalesce(b.idle_j, 0) / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh')
                                                                                AS idle_cost_usd,
    getvariable('pricing_version')                                              AS pricing_version
FROM b
JOIN int_gpus g USING (gpu_uuid)
LEFT JOIN pricing_gpu p USING (gpu_model)
LEFT JOIN (SELECT gpu_uuid, bool_or(simulated) AS simulated FROM int_gpu_intervals
           GROUP BY gpu_uuid) s USING (gpu_uuid);
