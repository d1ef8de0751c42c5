-- mart_conservation: the invariant, per GPU and hour, for seconds and joules:
-- Σ attributed + unattributed (preempted, model loading, idle, unaccounted) = measured.
-- Attributed is the sum of the per-request results; measured comes from the intervals and
-- the unattributed buckets from the kernel's windows: computations that must agree.
CREATE OR REPLACE TEMP TABLE mart_conservation AS
WITH attributed AS (
    SELECT gpu_uuid, hour, sum(gpu_seconds) AS s, sum(energy_j) AS j
    FROM int_attribution GROUP BY gpu_uuid, hour
),
k AS (
    SELECT gpu_idx, to_timestamp("window") AS hour, measured_s, measured_j,
           preempted_s + model_loading_s + idle_s + unaccounted_s AS unattributed_s,
           preempted_j + model_loading_j + idle_j + unaccounted_j AS unattributed_j
    FROM kernel_windows
)
SELECT
    g.host_name, g.gpu_uuid, k.hour, k.measured_s, k.measured_j,
    coalesce(a.s, 0) AS attributed_s, coalesce(a.j, 0) AS attributed_j,
    k.unattributed_s, k.unattributed_j,
    abs(coalesce(a.s, 0) + k.unattributed_s - k.measured_s)
        / greatest(abs(k.measured_s), 1e-300) AS rel_error_s,
    abs(coalesce(a.j, 0) + k.unattributed_j - k.measured_j)
        / greatest(abs(k.measured_j), 1e-300) AS rel_error_j
FROM k
JOIN int_gpus g USING (gpu_idx)
LEFT JOIN attributed a ON a.gpu_uuid = g.gpu_uuid AND a.hour = k.hour;
