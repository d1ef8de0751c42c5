-- int_attribution: GPU-seconds and joules of each request on each of its GPUs, per window
-- (hour), from the attribution kernel (analytics/attribution.py documents the method, its
-- weights and why shares sum to one). Tensor-parallel requests have a row per GPU.
CREATE OR REPLACE TEMP TABLE int_attribution AS
SELECT
    w.request_uid,
    g.gpu_uuid,
    g.host_name,
    g.gpu_model,
    to_timestamp(k."window")              AS hour,
    w.work_class,
    sum(k.gpu_seconds)                    AS gpu_seconds,
    sum(k.energy_j)                       AS energy_j,
    getvariable('attribution_method')     AS attribution_method
FROM kernel_segments k
JOIN int_request_work w USING (req_idx)
JOIN int_gpus g USING (gpu_idx)
GROUP BY w.request_uid, g.gpu_uuid, g.host_name, g.gpu_model, k."window", w.work_class;
