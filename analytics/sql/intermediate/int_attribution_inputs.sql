-- The attribution kernel's inputs (analytics/attribution.py), keyed by integers so the
-- kernel never touches strings: GPUs, placed requests with their phases and tokens of work,
-- and which GPUs each request ran on.
-- A GPU's key is the hash of its UUID: computed where needed, no join with int_gpus.
CREATE OR REPLACE TEMP TABLE int_gpus AS
SELECT hash(gpu_uuid) AS gpu_idx, gpu_uuid, any_value(host_name) AS host_name,
       any_value(gpu_model) AS gpu_model
FROM int_gpu_intervals GROUP BY gpu_uuid;

-- Each served model's shape (config_models, matched whole or after the last '/'; the
-- longest name wins): its weights in KV tokens, and the KV cache bytes of one token.
CREATE OR REPLACE TEMP TABLE int_model_shapes AS
SELECT r.model, arg_max(m.weights_in_kv_tokens, length(m.model)) AS weights_in_kv_tokens,
       arg_max(m.kv_bytes_per_token, length(m.model)) AS kv_bytes_per_token
FROM (SELECT DISTINCT model FROM int_requests WHERE model IS NOT NULL) r
JOIN config_models m
  ON lower(r.model) = m.model OR lower(r.model) LIKE '%/' || m.model
GROUP BY r.model;

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
    coalesce(output_tokens, 0)                                          AS decode_tokens,
    -- The KV context a decode step reads for this request, on average over its reply, in
    -- units of its model's weights (0 for a model of unknown shape: decodes share equally).
    coalesce((coalesce(input_tokens, 0) + coalesce(output_tokens, 0) / 2)
             / s.weights_in_kv_tokens, 0)                               AS context
FROM int_requests r
LEFT JOIN int_model_shapes s USING (model)
WHERE request_uid IN (SELECT request_uid FROM int_request_gpus)
  AND scheduled_s IS NOT NULL AND finished_s IS NOT NULL;

CREATE OR REPLACE TEMP TABLE int_placements AS
SELECT w.req_idx, hash(p.gpu_uuid) AS gpu_idx
FROM int_request_gpus p
JOIN int_request_work w USING (request_uid);
