-- GPU work that belongs to no request, placed on GPUs like requests are (span or metric
-- tags, else host/PID against the agent's process samples).

-- int_engine_loading: each GPU's model-loading windows (an engine's start-up).
CREATE OR REPLACE TEMP TABLE int_engine_loading AS
SELECT host_name, unnest(gpu_uuids) AS gpu_uuid, pid, start_s AS t0, end_s AS t1,
       'span_tag' AS placement_source
FROM stg_engine_startups
WHERE len(gpu_uuids) > 0
UNION ALL
SELECT DISTINCT s.host_name, p.gpu_uuid, s.pid, s.start_s, s.end_s, 'process_match'
FROM stg_engine_startups s
JOIN stg_gpu_processes p
  ON p.host_name = s.host_name AND p.pid = s.pid AND p.ts_s BETWEEN s.start_s AND s.end_s + 60
WHERE coalesce(len(s.gpu_uuids), 0) = 0;

-- int_recompute: prompt tokens each engine recomputed after preempting requests, per scrape
-- interval, from the counter's increase (a decrease is a restarted engine: its new value).
CREATE OR REPLACE TEMP TABLE int_recompute AS
WITH d AS (
    SELECT host_name, model, pid, gpu_uuids, lag(ts_s) OVER w AS t0, ts_s AS t1,
           CASE WHEN value >= lag(value) OVER w THEN value - lag(value) OVER w ELSE value END
               AS tokens
    FROM stg_engine_counters
    WHERE counter = 'vllm:prompt_tokens_recomputed_total'
    WINDOW w AS (PARTITION BY host_name, series ORDER BY ts_s)
),
r AS (SELECT * FROM d WHERE t0 IS NOT NULL AND tokens > 0)
SELECT host_name, model, unnest(gpu_uuids) AS gpu_uuid, t0, t1, tokens FROM r
WHERE len(gpu_uuids) > 0
UNION ALL
SELECT DISTINCT r.host_name, r.model, p.gpu_uuid, r.t0, r.t1, r.tokens
FROM r
JOIN stg_gpu_processes p
  ON p.host_name = r.host_name AND p.pid = r.pid AND p.ts_s BETWEEN r.t0 - 60 AND r.t1 + 60
WHERE coalesce(len(r.gpu_uuids), 0) = 0;
