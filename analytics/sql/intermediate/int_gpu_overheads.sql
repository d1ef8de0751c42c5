-- GPU work that belongs to no request, placed on GPUs like requests are (span or metric
-- tags, else host/PID against the agent's process samples and their ancestors,
-- int_gpu_process_owners).

-- int_engine_loading: each GPU's model-loading windows (an engine's start-up).
CREATE OR REPLACE TEMP TABLE int_engine_loading AS
SELECT host_name, unnest(gpu_uuids) AS gpu_uuid, pid, start_s AS t0, end_s AS t1,
       'span_tag' AS placement_source
FROM stg_engine_startups
WHERE len(gpu_uuids) > 0
UNION ALL
SELECT DISTINCT s.host_name, p.gpu_uuid, s.pid, s.start_s, s.end_s, 'process_match'
FROM stg_engine_startups s
JOIN int_gpu_process_owners p
  ON p.host_name = s.host_name AND p.owner_pid = s.pid
 AND p.ts_s BETWEEN s.start_s AND s.end_s + 60
WHERE coalesce(len(s.gpu_uuids), 0) = 0;

-- int_recompute: prompt tokens each engine recomputed after preempting requests, per scrape
-- interval. vLLM counts preemptions (vllm:num_preemptions_total, one per request preempted)
-- but not the tokens they cost: a preempted request's KV blocks are freed and, scheduled
-- again, it prefills its prompt and output so far anew (prompt_tokens_total counts a prompt
-- once, at its first scheduling). Each preemption is estimated at the mean KV a running
-- request held at the scrape that counted it: kv_cache_usage_perc × the KV capacity in
-- tokens (vllm:cache_config_info's kv_cache_size_tokens) / num_requests_running. An engine
-- that does not report its capacity gets no estimate (its recomputation stays in the
-- requests' shares). A counter that fell is a restarted engine: its new value counts.
CREATE OR REPLACE TEMP TABLE int_recompute AS
WITH d AS (
    SELECT host_name, engine, model, pid, gpu_uuids, lag(ts_s) OVER w AS t0, ts_s AS t1,
           CASE WHEN value >= lag(value) OVER w THEN value - lag(value) OVER w ELSE value END
               AS preemptions
    FROM stg_engine_counters
    WHERE counter = 'vllm:num_preemptions_total'
    WINDOW w AS (PARTITION BY host_name, series ORDER BY ts_s)
),
g AS (
    SELECT host_name, engine, ts_s,
           max(value) FILTER (WHERE gauge = 'vllm:kv_cache_usage_perc')   AS kv_usage,
           max(value) FILTER (WHERE gauge = 'vllm:num_requests_running')  AS running
    FROM stg_engine_gauges
    WHERE gauge IN ('vllm:kv_cache_usage_perc', 'vllm:num_requests_running')
    GROUP BY ALL
),
r AS (
    SELECT d.host_name, d.model, d.pid, d.gpu_uuids, d.t0, d.t1,
           d.preemptions * g.kv_usage * c.kv_cache_size_tokens / greatest(g.running, 1)
               AS tokens
    FROM d
    JOIN g ON g.host_name = d.host_name AND g.engine = d.engine AND g.ts_s = d.t1
    JOIN stg_engine_config c ON c.host_name = d.host_name AND c.engine = d.engine
                            AND c.ts_s = d.t1
    WHERE d.t0 IS NOT NULL AND d.preemptions > 0
)
SELECT host_name, model, unnest(gpu_uuids) AS gpu_uuid, t0, t1, tokens FROM r
WHERE len(gpu_uuids) > 0 AND tokens > 0
UNION ALL
SELECT DISTINCT r.host_name, r.model, p.gpu_uuid, r.t0, r.t1, r.tokens
FROM r
JOIN int_gpu_process_owners p
  ON p.host_name = r.host_name AND p.owner_pid = r.pid AND p.ts_s BETWEEN r.t0 - 60 AND r.t1 + 60
WHERE coalesce(len(r.gpu_uuids), 0) = 0 AND r.tokens > 0;
