--! publish: gpu_activity
--! day_key: epoch(hour)
-- mart_gpu_activity: per GPU and hour, what the GPU page charts without reading every
-- sample: NVML utilization (a kernel ran), SM activity (GPM, Hopper and newer: how much of
-- the chip worked), power and its limit, each a mean over the hour's samples with how many
-- samples reported it (`*_n`), so longer buckets weight the hours by their samples.
CREATE OR REPLACE TEMP TABLE mart_gpu_activity AS
SELECT
    gpu_uuid, any_value(host_name) AS host_name, any_value(gpu_model) AS gpu_model,
    date_trunc('hour', to_timestamp(ts_s)) AS hour,
    avg(utilization) AS utilization, count(utilization) AS utilization_n,
    avg(sm_active) AS sm_active, count(sm_active) AS sm_active_n,
    avg(power_w) AS power_w, count(power_w) AS power_n, max(power_w) AS peak_power_w,
    max(power_limit_w) AS power_limit_w
FROM stg_gpu_samples
GROUP BY gpu_uuid, hour;
