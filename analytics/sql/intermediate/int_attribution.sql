-- int_attribution: each GPU interval's seconds and joules split among the requests active on
-- that GPU in it. Active = placed on the GPU and [scheduled, finished] overlaps the interval;
-- tensor-parallel requests are active on each of their GPUs.
--
-- Weights (getvariable('attribution_method')):
--   work (default): prefill tokens × prefill_token_weight × (share of the request's prefill
--       phase inside the interval) + output tokens × (share of its decode phase inside it).
--       If every active request has zero work in an interval, time overlap is used for it.
--   time_overlap: seconds of overlap.     equal: 1 per active request.
-- Shares are weight / Σ weight in the interval, so they sum to 1 and conservation holds.
CREATE OR REPLACE TEMP TABLE int_attribution AS
WITH active AS (
    SELECT
        i.host_name, i.gpu_uuid, i.gpu_model, i.t0, i.t1, i.measured_s, i.measured_j, i.hour,
        r.request_uid, r.work_class,
        greatest(least(i.t1, r.finished_s) - greatest(i.t0, r.scheduled_s), 0) AS overlap_s,
        greatest(least(i.t1, r.first_token_s) - greatest(i.t0, r.scheduled_s), 0)
            / greatest(r.first_token_s - r.scheduled_s, 1e-9)                  AS prefill_frac,
        greatest(least(i.t1, r.finished_s) - greatest(i.t0, r.first_token_s), 0)
            / greatest(r.finished_s - r.first_token_s, 1e-9)                   AS decode_frac,
        greatest(coalesce(r.input_tokens, 0) - coalesce(r.cached_tokens, 0), 0) AS prefill_tokens,
        coalesce(r.output_tokens, 0)                                           AS decode_tokens
    FROM int_gpu_intervals i
    JOIN int_request_gpus g ON g.gpu_uuid = i.gpu_uuid
    JOIN int_requests r ON r.request_uid = g.request_uid
    WHERE r.scheduled_s < i.t1 AND r.finished_s > i.t0
),
weighted AS (
    SELECT *,
        prefill_tokens * getvariable('prefill_token_weight') * prefill_frac
            + decode_tokens * decode_frac                                      AS work
    FROM active
),
chosen AS (
    SELECT *,
        CASE getvariable('attribution_method')
            WHEN 'equal' THEN 1.0
            WHEN 'time_overlap' THEN overlap_s
            ELSE CASE WHEN sum(work) OVER iv > 0 THEN work ELSE overlap_s END
        END AS weight
    FROM weighted
    WINDOW iv AS (PARTITION BY gpu_uuid, t0)
),
shares AS (
    SELECT *,
        CASE WHEN sum(weight) OVER iv > 0 THEN weight / sum(weight) OVER iv
             ELSE 1.0 / count(*) OVER iv END AS share
    FROM chosen
    WINDOW iv AS (PARTITION BY gpu_uuid, t0)
)
SELECT
    host_name, gpu_uuid, gpu_model, t0, t1, hour, request_uid, work_class,
    overlap_s, work, share,
    share * measured_s                             AS gpu_seconds,
    share * measured_j                             AS energy_j,
    getvariable('attribution_method')              AS attribution_method
FROM shares;
