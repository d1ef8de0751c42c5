-- The attribution kernel's inputs (analytics/attribution.py), keyed by integers so the
-- kernel never touches strings: GPUs, placed requests with their phases and tokens of work,
-- and which GPUs each request ran on.
-- A GPU's key is the hash of its UUID: computed where needed, no join with int_gpus.
CREATE OR REPLACE TEMP TABLE int_gpus AS
SELECT hash(gpu_uuid) AS gpu_idx, gpu_uuid, any_value(host_name) AS host_name,
       any_value(gpu_model) AS gpu_model
FROM int_gpu_intervals GROUP BY gpu_uuid;

CREATE OR REPLACE TEMP TABLE int_request_work AS
SELECT
    row_number() OVER () - 1                                            AS req_idx,
    request_uid,
    work_class,
    CASE work_class WHEN 'useful' THEN 0 WHEN 'failed' THEN 1 WHEN 'aborted' THEN 2
                    ELSE 3 END                                          AS class_idx,
    scheduled_s,
    first_token_s,
    finished_s,
    greatest(coalesce(input_tokens, 0) - coalesce(cached_tokens, 0), 0) AS prefill_tokens,
    coalesce(output_tokens, 0)                                          AS decode_tokens
FROM int_requests
WHERE request_uid IN (SELECT request_uid FROM int_request_gpus)
  AND scheduled_s IS NOT NULL AND finished_s IS NOT NULL;

CREATE OR REPLACE TEMP TABLE int_placements AS
SELECT w.req_idx, hash(p.gpu_uuid) AS gpu_idx
FROM int_request_gpus p
JOIN int_request_work w USING (request_uid);
