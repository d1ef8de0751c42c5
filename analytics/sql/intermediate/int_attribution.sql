--! publish: attribution
--! day_key: epoch(hour)
-- int_attribution: GPU-seconds and joules of each request on each of its GPUs, per window
-- (hour), from the attribution kernel (analytics/attribution.py documents the method, its
-- weights and why shares sum to one). Tensor-parallel requests have a row per GPU.
CREATE OR REPLACE TEMP TABLE int_attribution AS
WITH k AS (  -- add up a request's segments (prefill, decode, pieces cut at window edges)
    SELECT req_idx, gpu_idx, "window", sum(gpu_seconds) AS gpu_seconds, sum(energy_j) AS energy_j,
           sum(prompt_seconds) AS prompt_seconds, sum(prompt_j) AS prompt_j,
           sum(context_read_seconds) AS context_read_seconds,
           sum(context_read_j) AS context_read_j
    FROM kernel_segments
    GROUP BY req_idx, gpu_idx, "window"
)
SELECT
    w.request_uid,
    g.gpu_uuid,
    g.host_name,
    g.gpu_model,
    to_timestamp(k."window")              AS hour,
    w.work_class,
    k.gpu_seconds,
    k.energy_j,
    -- of which its prompt's processing (prefill) and its decodes' reads of the KV context
    -- (gpu_time only; 0 under the other methods): what context expansion is charged from
    k.prompt_seconds,
    k.prompt_j,
    k.context_read_seconds,
    k.context_read_j,
    getvariable('attribution_method')     AS attribution_method
FROM k
JOIN int_request_work w USING (req_idx)
JOIN int_gpus g USING (gpu_idx);
