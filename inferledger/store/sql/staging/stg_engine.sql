-- stg_engine_counters: vLLM's cumulative counters (V1 names, e.g. vllm:num_preemptions_total)
-- as the node agent scraped them from each engine's /metrics, one row per series and scrape.
-- A series is one scrape target and label set, across engine restarts (a new PID continues
-- the series, and its counter reset is seen as one); pid and gpu_uuids are the engine's
-- placement as the agent resolved it at that scrape.
CREATE OR REPLACE VIEW stg_engine_counters AS
SELECT
    host_name,
    metric_name                                                       AS counter,
    attributes['inferledger.engine']                                  AS engine,
    attributes['model_name']                                          AS model,
    CAST(map_from_entries(list_filter(map_entries(attributes), lambda e: e.key NOT IN
        ('inferledger.pid', 'inferledger.gpu_uuids'))) AS VARCHAR)     AS series,
    TRY_CAST(attributes['inferledger.pid'] AS BIGINT)                 AS pid,
    TRY_CAST(attributes['inferledger.gpu_uuids'] AS VARCHAR[])        AS gpu_uuids,
    time_unix_nano / 1e9                                              AS ts_s,
    value,
    coalesce(resource_attributes['inferledger.simulated'], 'false') = 'true' AS simulated
FROM raw_metric_points
WHERE metric_name LIKE 'vllm:%' AND metric_type = 'sum'
QUALIFY row_number() OVER (PARTITION BY host_name, metric_name, series, time_unix_nano
                           ORDER BY received_at_unix_nano) = 1;

-- stg_engine_gauges: vLLM's gauges per engine and scrape: vllm:num_requests_running,
-- vllm:num_requests_waiting (the queue) and vllm:kv_cache_usage_perc (0–1, KV-cache pressure).
CREATE OR REPLACE VIEW stg_engine_gauges AS
SELECT
    host_name,
    metric_name                                                       AS gauge,
    attributes['inferledger.engine']                                  AS engine,
    attributes['model_name']                                          AS model,
    TRY_CAST(attributes['inferledger.pid'] AS BIGINT)                 AS pid,
    time_unix_nano / 1e9                                              AS ts_s,
    value,
    coalesce(resource_attributes['inferledger.simulated'], 'false') = 'true' AS simulated
FROM raw_metric_points
WHERE metric_name LIKE 'vllm:%' AND metric_type = 'gauge'
QUALIFY row_number() OVER (PARTITION BY host_name, metric_name, attributes, time_unix_nano
                           ORDER BY received_at_unix_nano) = 1;

-- stg_engine_config: each engine's KV-cache capacity per scrape, from vllm:cache_config_info
-- (an info gauge whose labels carry the configuration; the agent keeps the capacity ones).
CREATE OR REPLACE VIEW stg_engine_config AS
SELECT
    host_name,
    attributes['inferledger.engine']                                  AS engine,
    time_unix_nano / 1e9                                              AS ts_s,
    max(TRY_CAST(attributes['kv_cache_size_tokens'] AS DOUBLE))       AS kv_cache_size_tokens,
    max(TRY_CAST(attributes['num_gpu_blocks'] AS BIGINT))             AS num_gpu_blocks,
    max(TRY_CAST(attributes['block_size'] AS BIGINT))                 AS block_size
FROM raw_metric_points
WHERE metric_name = 'vllm:cache_config_info'
GROUP BY ALL;
