-- InferLedger SQL API for this data directory. Generated; do not edit.

CREATE OR REPLACE VIEW raw_metric_points AS SELECT * FROM read_parquet('/work/main/raw/metric_points/**/*.parquet', union_by_name = true, hive_partitioning = false);
CREATE OR REPLACE VIEW raw_spans AS SELECT * FROM read_parquet('/work/main/raw/spans/**/*.parquet', union_by_name = true, hive_partitioning = false);

-- stg_collector_metrics: the collector's own metrics (collector/telemetry.py): items accepted
-- and rejected by signal, requests throttled, duplicate spans, queue depth, flush duration
-- (value = total seconds, count = flushes), store size and files. Counters are cumulative
-- since the collector started: the latest row of a series is its total.
CREATE OR REPLACE VIEW stg_collector_metrics AS
SELECT
    host_name,
    metric_name,
    attributes['signal']                                              AS signal,
    attributes['outcome']                                             AS outcome,
    time_unix_nano / 1e9                                              AS ts_s,
    metric_type,
    value,
    count
FROM raw_metric_points
WHERE service_name = 'inferledger-collector';

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

-- stg_gpu_samples: one row per GPU (hw.id) per agent sample, metrics pivoted to columns.
-- A field the GPU does not support is NULL (the agent does not send it), never 0.
CREATE OR REPLACE VIEW stg_gpu_samples AS
SELECT
    host_name,
    attributes['hw.id']                                                       AS gpu_uuid,
    any_value(attributes['hw.model'])                                         AS gpu_model,
    time_unix_nano / 1e9                                                      AS ts_s,
    max(value) FILTER (WHERE metric_name = 'hw.energy')                       AS energy_j,
    max(value) FILTER (WHERE metric_name = 'hw.power')                        AS power_w,
    max(value) FILTER (WHERE metric_name = 'hw.gpu.memory.usage')             AS memory_used_bytes,
    max(value) FILTER (WHERE metric_name = 'hw.gpu.memory.limit')             AS memory_total_bytes,
    max(value) FILTER (WHERE metric_name = 'hw.gpu.utilization')              AS utilization,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.power.limit')     AS power_limit_w,
    max(value) FILTER (WHERE metric_name = 'hw.temperature')                  AS temperature_c,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.clock.sm')        AS sm_clock_mhz,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.clock_event_reasons')
                                                                              AS clock_event_reasons,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.sm.active')       AS sm_active,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.sm.occupancy')    AS sm_occupancy,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.tensor.active')   AS tensor_active,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.dram.active')     AS dram_active,
    bool_or(coalesce(resource_attributes['inferledger.simulated'], 'false') = 'true') AS simulated
FROM raw_metric_points
WHERE metric_name IN ('hw.energy', 'hw.power', 'hw.gpu.memory.usage', 'hw.gpu.memory.limit',
                      'hw.gpu.utilization', 'inferledger.gpu.power.limit', 'hw.temperature',
                      'inferledger.gpu.clock.sm', 'inferledger.gpu.clock_event_reasons',
                      'inferledger.gpu.sm.active', 'inferledger.gpu.sm.occupancy',
                      'inferledger.gpu.tensor.active', 'inferledger.gpu.dram.active')
  AND attributes['hw.id'] IS NOT NULL
GROUP BY host_name, attributes['hw.id'], time_unix_nano;

-- stg_gpu_processes: which host PIDs held memory on which GPU at each sample (placement),
-- with the container and Kubernetes pod the agent found them in (NULL outside one) and,
-- on a MIG-partitioned GPU, the instance they run in.
CREATE OR REPLACE VIEW stg_gpu_processes AS
SELECT DISTINCT
    host_name,
    attributes['hw.id']                                AS gpu_uuid,
    attributes['inferledger.gpu.mig_id']               AS mig_uuid,
    TRY_CAST(attributes['process.pid'] AS BIGINT)      AS pid,
    attributes['container.id']                         AS container_id,
    attributes['k8s.pod.uid']                          AS pod_uid,
    time_unix_nano / 1e9                               AS ts_s,
    value                                              AS memory_used_bytes
FROM raw_metric_points
WHERE metric_name = 'inferledger.gpu.process.memory.usage';

-- stg_gpu_mig_instances: each MIG instance of a partitioned GPU at each sample, under its
-- parent GPU (power and energy are measured for the parent only).
CREATE OR REPLACE VIEW stg_gpu_mig_instances AS
SELECT
    host_name,
    attributes['hw.parent_id']                                                    AS gpu_uuid,
    attributes['hw.id']                                                           AS mig_uuid,
    TRY_CAST(attributes['inferledger.gpu.instance_id'] AS INTEGER)                AS gpu_instance_id,
    time_unix_nano / 1e9                                                          AS ts_s,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.mig.memory.usage')    AS memory_used_bytes,
    max(value) FILTER (WHERE metric_name = 'inferledger.gpu.mig.memory.limit')    AS memory_total_bytes
FROM raw_metric_points
WHERE metric_name IN ('inferledger.gpu.mig.memory.usage', 'inferledger.gpu.mig.memory.limit')
GROUP BY ALL;

-- stg_gpu_health: per GPU and agent cycle, whether the GPU answered (hw.status ok / failed)
-- and how many samples a hung NVML call has cost it so far.
CREATE OR REPLACE VIEW stg_gpu_health AS
SELECT
    host_name,
    attributes['hw.id']                                                           AS gpu_uuid,
    time_unix_nano / 1e9                                                          AS ts_s,
    arg_max(attributes['hw.state'], value) FILTER (WHERE metric_name = 'hw.status') AS state,
    max(value) FILTER (WHERE metric_name = 'inferledger.agent.late_samples')       AS late_samples
FROM raw_metric_points
WHERE metric_name IN ('hw.status', 'inferledger.agent.late_samples')
GROUP BY ALL;

-- stg_spans: every span once (exporter retries may deliver duplicates), times as epoch seconds.
CREATE OR REPLACE VIEW stg_spans AS
SELECT
    trace_id,
    span_id,
    trace_id || ':' || span_id                  AS span_key,
    parent_span_id,
    name,
    kind,
    start_time_unix_nano / 1e9                  AS start_s,
    end_time_unix_nano / 1e9                    AS end_s,
    (end_time_unix_nano - start_time_unix_nano) / 1e9 AS duration_s,
    status_code,
    status_message,
    service_name,
    host_name,
    coalesce(resource_attributes['inferledger.simulated'], 'false') = 'true' AS simulated,
    resource_attributes,
    attributes
FROM raw_spans
QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY received_at_unix_nano) = 1;

-- stg_engine_spans: vLLM's llm_request spans (SERVER kind). Latencies are seconds; queue,
-- prefill, decode and inference come from the engine's monotonic clock, TTFT and e2e from
-- the frontend wall clock (research/vllm.md §1.2).
CREATE OR REPLACE VIEW stg_engine_spans AS
SELECT
    trace_id,
    span_id,
    span_key,
    parent_span_id,
    attributes['gen_ai.request.id']                                   AS request_id,
    regexp_replace(attributes['gen_ai.request.id'], '^(chatcmpl|cmpl|embd)-', '') AS request_key,
    start_s                                                           AS arrival_s,
    TRY_CAST(attributes['gen_ai.latency.time_in_queue'] AS DOUBLE)            AS queue_s,
    TRY_CAST(attributes['gen_ai.latency.time_to_first_token'] AS DOUBLE)      AS ttft_s,
    TRY_CAST(attributes['gen_ai.latency.time_in_model_prefill'] AS DOUBLE)    AS prefill_s,
    TRY_CAST(attributes['gen_ai.latency.time_in_model_decode'] AS DOUBLE)     AS decode_s,
    TRY_CAST(attributes['gen_ai.latency.time_in_model_inference'] AS DOUBLE)  AS inference_s,
    TRY_CAST(attributes['gen_ai.latency.e2e'] AS DOUBLE)                      AS e2e_s,
    TRY_CAST(coalesce(attributes['gen_ai.usage.input_tokens'],
                      attributes['gen_ai.usage.prompt_tokens']) AS BIGINT)    AS prompt_tokens,
    TRY_CAST(coalesce(attributes['gen_ai.usage.output_tokens'],
                      attributes['gen_ai.usage.completion_tokens']) AS BIGINT) AS completion_tokens,
    TRY_CAST(coalesce(attributes['gen_ai.usage.cache_read.input_tokens'],
                      attributes['gen_ai.usage.cached_tokens']) AS BIGINT)    AS cached_tokens,
    attributes['gen_ai.response.finish_reasons']                      AS finish_reasons,
    host_name,
    TRY_CAST(coalesce(resource_attributes['vllm.process_id'],
                      resource_attributes['process.pid']) AS BIGINT)  AS pid,
    simulated
FROM stg_spans
WHERE name = 'llm_request' AND kind = 2;

-- stg_edge_spans: one span per HTTP inference request from the InferLedger middleware or
-- gateway: the source of truth for tenant, model, outcome, tokens and placement. A gateway
-- runs in front of the engines, so its own host is not the request's: it names the upstream.
CREATE OR REPLACE VIEW stg_edge_spans AS
SELECT
    trace_id,
    span_id,
    span_key,
    parent_span_id,
    attributes['inferledger.span.source']                             AS edge_source,
    attributes['inferledger.request_id']                              AS request_key,
    attributes['inferledger.tenant']                                  AS tenant,
    attributes['inferledger.route']                                   AS route,
    coalesce(attributes['gen_ai.request.model'], attributes['gen_ai.response.model']) AS model,
    attributes['gen_ai.operation.name']                               AS operation,
    attributes['inferledger.stream'] = 'true'                         AS stream,
    TRY_CAST(attributes['http.response.status_code'] AS INTEGER)      AS http_status,
    attributes['inferledger.outcome']                                 AS outcome,
    attributes['gen_ai.response.finish_reasons']                      AS finish_reasons,
    TRY_CAST(attributes['gen_ai.usage.input_tokens'] AS BIGINT)       AS input_tokens,
    TRY_CAST(attributes['gen_ai.usage.output_tokens'] AS BIGINT)      AS output_tokens,
    TRY_CAST(attributes['gen_ai.usage.cache_read.input_tokens'] AS BIGINT) AS cached_tokens,
    attributes['inferledger.usage.estimated'] = 'true'                AS usage_estimated,
    start_s,
    end_s,
    duration_s                                                        AS e2e_s,
    TRY_CAST(attributes['inferledger.ttft_s'] AS DOUBLE)              AS ttft_s,
    coalesce(attributes['inferledger.host'],
             CASE WHEN attributes['inferledger.span.source'] = 'middleware' THEN host_name END)
                                                                      AS host_name,
    TRY_CAST(attributes['inferledger.pid'] AS BIGINT)                 AS pid,
    TRY_CAST(attributes['inferledger.gpu_uuids'] AS VARCHAR[])        AS gpu_uuids,
    attributes['inferledger.upstream']                                AS upstream,
    simulated
FROM stg_spans
WHERE attributes['inferledger.span.source'] IN ('middleware', 'gateway');

-- stg_engine_startups: an engine's start-up, from its process start until it first served,
-- as the middleware records it (span inferledger.engine.startup): the model-loading window.
CREATE OR REPLACE VIEW stg_engine_startups AS
SELECT
    coalesce(attributes['inferledger.host'], host_name)               AS host_name,
    TRY_CAST(attributes['inferledger.pid'] AS BIGINT)                 AS pid,
    TRY_CAST(attributes['inferledger.gpu_uuids'] AS VARCHAR[])        AS gpu_uuids,
    start_s,
    end_s,
    simulated
FROM stg_spans
WHERE name = 'inferledger.engine.startup';


