-- int_gpu_intervals: the measured GPU time and energy between consecutive agent samples.
-- Energy is the delta of NVML's cumulative counter; where the counter went backwards
-- (driver reload) or is missing, the trapezoid of the two power readings is used instead.
-- NVML's utilization is "over the past sample period", so the reading that closes the
-- interval (the next sample) is the one that describes it.
CREATE OR REPLACE TEMP TABLE int_gpu_intervals AS
WITH s AS (
    SELECT
        host_name, gpu_uuid, gpu_model, simulated,
        ts_s                                             AS t0,
        lead(ts_s) OVER w                                AS t1,
        energy_j,
        lead(energy_j) OVER w                            AS energy_next_j,
        power_w,
        lead(power_w) OVER w                             AS power_next_w,
        lead(utilization) OVER w                         AS utilization,
        power_limit_w
    FROM stg_gpu_samples
    WINDOW w AS (PARTITION BY host_name, gpu_uuid ORDER BY ts_s)
)
SELECT
    host_name, gpu_uuid, gpu_model, simulated, t0, t1,
    t1 - t0                                              AS measured_s,
    CASE WHEN energy_next_j >= energy_j THEN energy_next_j - energy_j
         ELSE (coalesce(power_w, 0) + coalesce(power_next_w, power_w, 0)) / 2 * (t1 - t0)
    END                                                  AS measured_j,
    CASE WHEN energy_next_j >= energy_j THEN 'counter' ELSE 'power_integral' END AS energy_source,
    utilization,
    power_w,
    power_limit_w,
    date_trunc('hour', to_timestamp(t0))                 AS hour
FROM s
WHERE t1 IS NOT NULL AND t1 > t0;
