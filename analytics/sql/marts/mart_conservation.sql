-- mart_conservation: the invariant, per GPU and hour, for seconds and joules:
-- Σ attributed + unattributed (idle or unaccounted) = measured.
-- Attributed is the sum of the per-request results; measured and unattributed come from the
-- intervals: two different computations that must agree.
CREATE OR REPLACE TEMP TABLE mart_conservation AS
WITH attributed AS (
    SELECT gpu_uuid, hour, sum(gpu_seconds) AS s, sum(energy_j) AS j
    FROM int_attribution GROUP BY gpu_uuid, hour
)
SELECT
    g.host_name, g.gpu_uuid, to_timestamp(k."window") AS hour, k.measured_s, k.measured_j,
    coalesce(a.s, 0) AS attributed_s, coalesce(a.j, 0) AS attributed_j,
    k.idle_s + k.unaccounted_s AS unattributed_s, k.idle_j + k.unaccounted_j AS unattributed_j,
    abs(coalesce(a.s, 0) + k.idle_s + k.unaccounted_s - k.measured_s)
        / greatest(abs(k.measured_s), 1e-300) AS rel_error_s,
    abs(coalesce(a.j, 0) + k.idle_j + k.unaccounted_j - k.measured_j)
        / greatest(abs(k.measured_j), 1e-300) AS rel_error_j
FROM kernel_windows k
JOIN int_gpus g USING (gpu_idx)
LEFT JOIN attributed a ON a.gpu_uuid = g.gpu_uuid AND a.hour = to_timestamp(k."window");
