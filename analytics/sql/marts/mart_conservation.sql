-- mart_conservation: the invariant, per GPU and hour, for seconds and joules:
-- Σ attributed + unattributed (idle or unaccounted) = measured.
-- Computed from the intervals and the attribution rows, independently of mart_gpu_time.
CREATE OR REPLACE TEMP TABLE mart_conservation AS
WITH attributed AS (
    SELECT gpu_uuid, t0, sum(gpu_seconds) AS s, sum(energy_j) AS j
    FROM int_attribution GROUP BY gpu_uuid, t0
),
per_window AS (
    SELECT i.host_name, i.gpu_uuid, i.hour,
        sum(i.measured_s)                                              AS measured_s,
        sum(i.measured_j)                                              AS measured_j,
        coalesce(sum(a.s), 0)                                          AS attributed_s,
        coalesce(sum(a.j), 0)                                          AS attributed_j,
        coalesce(sum(i.measured_s) FILTER (WHERE a.gpu_uuid IS NULL), 0) AS unattributed_s,
        coalesce(sum(i.measured_j) FILTER (WHERE a.gpu_uuid IS NULL), 0) AS unattributed_j
    FROM int_gpu_intervals i
    LEFT JOIN attributed a ON a.gpu_uuid = i.gpu_uuid AND a.t0 = i.t0
    GROUP BY i.host_name, i.gpu_uuid, i.hour
)
SELECT *,
    abs(attributed_s + unattributed_s - measured_s) / greatest(abs(measured_s), 1e-300) AS rel_error_s,
    abs(attributed_j + unattributed_j - measured_j) / greatest(abs(measured_j), 1e-300) AS rel_error_j
FROM per_window;
