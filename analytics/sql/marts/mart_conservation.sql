--! publish: conservation
--! day_key: epoch(hour)
-- mart_conservation: the invariant, per GPU and hour, for seconds and joules:
-- Σ attributed + unattributed (preempted, model loading, idle, unaccounted) + unmeasured
-- (quarantined intervals) = measured (every interval between two samples).
-- Attributed is the sum of the per-request results, unattributed the kernel's buckets,
-- unmeasured and measured come from the intervals: computations that must agree.
CREATE OR REPLACE TEMP TABLE mart_conservation AS
WITH attributed AS (
    SELECT gpu_uuid, hour, sum(gpu_seconds) AS s, sum(energy_j) AS j
    FROM int_attribution GROUP BY gpu_uuid, hour
),
k AS (
    SELECT g.gpu_uuid, to_timestamp(k."window") AS hour,
           preempted_s + model_loading_s + idle_s + unaccounted_s AS unattributed_s,
           preempted_j + model_loading_j + idle_j + unaccounted_j AS unattributed_j
    FROM kernel_windows k JOIN int_gpus g USING (gpu_idx)
),
i AS (
    SELECT gpu_uuid, hour, sum(measured_s) AS measured_s, sum(measured_j) AS measured_j,
           coalesce(sum(measured_s) FILTER (WHERE quarantine_reason IS NOT NULL), 0)
               AS unmeasured_s,
           coalesce(sum(measured_j) FILTER (WHERE quarantine_reason IS NOT NULL), 0)
               AS unmeasured_j
    FROM int_gpu_intervals GROUP BY ALL
)
SELECT
    g.host_name, i.gpu_uuid, i.hour, i.measured_s, i.measured_j,
    coalesce(a.s, 0) AS attributed_s, coalesce(a.j, 0) AS attributed_j,
    coalesce(k.unattributed_s, 0) AS unattributed_s, coalesce(k.unattributed_j, 0) AS unattributed_j,
    i.unmeasured_s, i.unmeasured_j,
    abs(coalesce(a.s, 0) + coalesce(k.unattributed_s, 0) + i.unmeasured_s - i.measured_s)
        / greatest(abs(i.measured_s), 1e-300) AS rel_error_s,
    abs(coalesce(a.j, 0) + coalesce(k.unattributed_j, 0) + i.unmeasured_j - i.measured_j)
        / greatest(abs(i.measured_j), 1e-300) AS rel_error_j
FROM i
JOIN int_gpus g USING (gpu_uuid)
LEFT JOIN k USING (gpu_uuid, hour)
LEFT JOIN attributed a USING (gpu_uuid, hour);
