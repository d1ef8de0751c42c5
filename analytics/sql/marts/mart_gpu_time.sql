-- mart_gpu_time: every measured GPU-second and joule, per GPU and hour, in exactly one bucket:
-- useful (requests that succeeded), failed, aborted, idle (no request active and the GPU not
-- busy) and unaccounted (no request placed on it, yet the GPU reported utilization > 5%).
CREATE OR REPLACE TEMP TABLE mart_gpu_time AS
WITH per_interval AS (
    SELECT gpu_uuid, t0,
        sum(gpu_seconds) FILTER (WHERE work_class = 'useful')  AS useful_s,
        sum(gpu_seconds) FILTER (WHERE work_class = 'failed')  AS failed_s,
        sum(gpu_seconds) FILTER (WHERE work_class = 'aborted') AS aborted_s,
        sum(energy_j) FILTER (WHERE work_class = 'useful')     AS useful_j,
        sum(energy_j) FILTER (WHERE work_class = 'failed')     AS failed_j,
        sum(energy_j) FILTER (WHERE work_class = 'aborted')    AS aborted_j
    FROM int_attribution
    GROUP BY gpu_uuid, t0
),
iv AS (
    SELECT i.*, a.useful_s, a.failed_s, a.aborted_s, a.useful_j, a.failed_j, a.aborted_j,
        a.gpu_uuid IS NULL AND coalesce(i.utilization, 0) <= 0.05 AS is_idle,
        a.gpu_uuid IS NULL AND coalesce(i.utilization, 0) > 0.05  AS is_unaccounted
    FROM int_gpu_intervals i
    LEFT JOIN per_interval a ON a.gpu_uuid = i.gpu_uuid AND a.t0 = i.t0
)
SELECT
    iv.host_name, iv.gpu_uuid, iv.gpu_model, iv.hour, bool_or(iv.simulated) AS simulated,
    sum(iv.measured_s)                                         AS measured_s,
    sum(iv.measured_j)                                         AS measured_j,
    coalesce(sum(iv.useful_s), 0)                              AS useful_s,
    coalesce(sum(iv.failed_s), 0)                              AS failed_s,
    coalesce(sum(iv.aborted_s), 0)                             AS aborted_s,
    coalesce(sum(iv.measured_s) FILTER (WHERE iv.is_idle), 0)  AS idle_s,
    coalesce(sum(iv.measured_s) FILTER (WHERE iv.is_unaccounted), 0) AS unaccounted_s,
    coalesce(sum(iv.useful_j), 0)                              AS useful_j,
    coalesce(sum(iv.failed_j), 0)                              AS failed_j,
    coalesce(sum(iv.aborted_j), 0)                             AS aborted_j,
    coalesce(sum(iv.measured_j) FILTER (WHERE iv.is_idle), 0)  AS idle_j,
    coalesce(sum(iv.measured_j) FILTER (WHERE iv.is_unaccounted), 0) AS unaccounted_j,
    any_value(p.usd_per_gpu_hour)                              AS usd_per_gpu_hour,
    sum(iv.measured_s) * any_value(p.usd_per_gpu_hour) / 3600.0
        + sum(iv.measured_j) / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh') AS cost_usd,
    coalesce(sum(iv.measured_s) FILTER (WHERE iv.is_idle), 0) * any_value(p.usd_per_gpu_hour) / 3600.0
        + coalesce(sum(iv.measured_j) FILTER (WHERE iv.is_idle), 0) / 3.6e6
          * getvariable('pue') * getvariable('usd_per_kwh')    AS idle_cost_usd,
    getvariable('pricing_version')                             AS pricing_version
FROM iv
LEFT JOIN pricing_gpu p USING (gpu_model)
GROUP BY iv.host_name, iv.gpu_uuid, iv.gpu_model, iv.hour;
