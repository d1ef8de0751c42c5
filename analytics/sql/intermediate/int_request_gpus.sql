--! publish: request_gpus
--! rows: request_uid IN (SELECT request_uid FROM int_requests WHERE started_s >= {lo} AND started_s < {hi})
-- int_request_gpus: which GPUs served each request, and how we know.
-- 1) span tags (GPU UUIDs the middleware resolved from CUDA_VISIBLE_DEVICES),
-- 2) else (host, PID) matched against the agent's per-GPU process samples during the request
--    (the GPU's process or one of its ancestors: vLLM V1's API server is its worker's),
-- 3) else the placement table from configuration (host + model → GPUs).
-- Requests with no row here are unplaced (reported, never guessed), or never reached an
-- engine (int_requests.reached_engine: they hold no GPU time).
CREATE OR REPLACE TEMP TABLE int_gpu_process_owners AS
SELECT host_name, gpu_uuid, ts_s, unnest(owner_pids) AS owner_pid FROM stg_gpu_processes;

CREATE OR REPLACE TEMP TABLE int_request_gpus AS
WITH tagged AS (
    SELECT request_uid, unnest(tagged_gpu_uuids) AS gpu_uuid, 'span_tag' AS placement_source
    FROM int_requests
    WHERE len(tagged_gpu_uuids) > 0 AND reached_engine
),
by_pid AS (
    SELECT DISTINCT r.request_uid, p.gpu_uuid, 'process_match' AS placement_source
    FROM int_requests r
    JOIN int_gpu_process_owners p
      ON p.host_name = r.host_name AND p.owner_pid = r.pid
     AND p.ts_s BETWEEN r.started_s - 60 AND r.finished_s + 60
    WHERE r.request_uid NOT IN (SELECT request_uid FROM tagged) AND r.reached_engine
),
by_config AS (
    SELECT DISTINCT r.request_uid, c.gpu_uuid, 'config' AS placement_source
    FROM int_requests r
    JOIN config_placement c ON c.host_name = r.host_name AND (c.model IS NULL OR c.model = r.model)
    WHERE r.request_uid NOT IN (SELECT request_uid FROM tagged)
      AND r.request_uid NOT IN (SELECT request_uid FROM by_pid) AND r.reached_engine
)
SELECT * FROM tagged UNION ALL SELECT * FROM by_pid UNION ALL SELECT * FROM by_config;
