-- stg_spans: every span once (exporter retries may deliver duplicates), times as epoch seconds.
-- A duplicate is the same span sent again, so it has the same start: keeping the start in the
-- dedupe's key changes nothing, and lets a filter on start_s reach the Parquet scan (a window
-- passes filters on its partition keys down), so a query for spans near a time reads only
-- the segments of that time.
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
QUALIFY row_number() OVER (PARTITION BY trace_id, span_id, start_time_unix_nano
                          ORDER BY received_at_unix_nano) = 1;

-- stg_engine_spans: vLLM's llm_request spans (SERVER kind). Latencies are seconds; queue,
-- prefill, decode and inference come from the engine core's monotonic clock (its QUEUED,
-- first SCHEDULED, first and last token timestamps); TTFT and e2e from the frontend's wall
-- clock (time.time() at the output batch, minus the request's arrival time).
CREATE OR REPLACE VIEW stg_engine_spans AS
SELECT
    trace_id,
    span_id,
    span_key,
    parent_span_id,
    attributes['gen_ai.request.id']                                   AS request_id,
    -- the id the middleware gave it: vLLM adds a prefix, and for text completions also
    -- the prompt's index (`cmpl-<id>-0`)
    regexp_replace(regexp_replace(attributes['gen_ai.request.id'], '^cmpl-(.+)-[0-9]+$', '\1'),
                   '^(chatcmpl|cmpl|embd)-', '')                      AS request_key,
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

-- stg_edge_spans: one span per HTTP inference request as it entered the serving stack: the
-- source of truth for tenant, model, outcome, tokens and placement. From the InferLedger
-- middleware (inside the engine's server) or gateway (in front of engines), or any other
-- SERVER span in OTel's GenAI conventions (`gen_ai.request.model`, what an instrumented
-- proxy emits; edge_source 'genai'). A gateway's or proxy's own host is not the request's:
-- the engine's span places it. A request turned away (HTTP 404) for a model name no
-- response came from is no model's: a typo must not appear as a model of its own.
CREATE OR REPLACE VIEW stg_edge_spans AS
WITH served AS (
    SELECT DISTINCT attributes['gen_ai.response.model'] AS model
    FROM stg_spans WHERE attributes['gen_ai.response.model'] IS NOT NULL
),
edges AS (
    SELECT *,
        coalesce(attributes['inferledger.span.source'], 'genai')          AS edge_source,
        TRY_CAST(attributes['http.response.status_code'] AS INTEGER)      AS http_status
    FROM stg_spans
    WHERE attributes['inferledger.span.source'] IN ('middleware', 'gateway')
       OR (kind = 2 AND attributes['inferledger.span.source'] IS NULL
           AND name <> 'llm_request' AND attributes['gen_ai.request.model'] IS NOT NULL
           AND coalesce(attributes['gen_ai.operation.name'], '')
               NOT IN ('execute_tool', 'invoke_agent', 'create_agent'))
)
SELECT
    trace_id,
    span_id,
    span_key,
    parent_span_id,
    edge_source,
    attributes['inferledger.request_id']                              AS request_key,
    attributes['inferledger.tenant']                                  AS tenant,
    coalesce(attributes['inferledger.route'], attributes['http.route'],
             attributes['url.path'])                                  AS route,
    coalesce(attributes['gen_ai.response.model'],
             CASE WHEN coalesce(http_status, 0) <> 404 OR attributes['gen_ai.request.model']
                       IN (SELECT model FROM served)
                  THEN attributes['gen_ai.request.model'] END)        AS model,
    attributes['gen_ai.operation.name']                               AS operation,
    attributes['inferledger.stream'] = 'true'                         AS stream,
    http_status,
    -- the middleware's verdict; from a proxy, what its HTTP status and span status say
    coalesce(attributes['inferledger.outcome'],
             CASE WHEN http_status IN (429, 503) THEN 'rejected'
                  WHEN http_status = 504 THEN 'timeout'
                  WHEN http_status >= 400 OR status_code = 2
                       OR attributes['error.type'] IS NOT NULL THEN 'error'
                  ELSE 'ok' END)                                      AS outcome,
    attributes['gen_ai.response.finish_reasons']                      AS finish_reasons,
    TRY_CAST(coalesce(attributes['gen_ai.usage.input_tokens'],
                      attributes['gen_ai.usage.prompt_tokens']) AS BIGINT)     AS input_tokens,
    TRY_CAST(coalesce(attributes['gen_ai.usage.output_tokens'],
                      attributes['gen_ai.usage.completion_tokens']) AS BIGINT) AS output_tokens,
    TRY_CAST(attributes['gen_ai.usage.cache_read.input_tokens'] AS BIGINT) AS cached_tokens,
    attributes['inferledger.usage.estimated'] = 'true'                AS usage_estimated,
    start_s,
    end_s,
    duration_s                                                        AS e2e_s,
    TRY_CAST(attributes['inferledger.ttft_s'] AS DOUBLE)              AS ttft_s,
    coalesce(attributes['inferledger.host'],
             CASE WHEN edge_source = 'middleware' THEN host_name END) AS host_name,
    TRY_CAST(attributes['inferledger.pid'] AS BIGINT)                 AS pid,
    TRY_CAST(attributes['inferledger.gpu_uuids'] AS VARCHAR[])        AS gpu_uuids,
    attributes['inferledger.upstream']                                AS upstream,
    -- what ties it to the answer it served (int_answers): the caller's span, a retry key
    -- (a hash of the Idempotency-Key header), the prompt's added context, every attribute
    parent_span_id                                                    AS caller_span_id,
    attributes['inferledger.retry_key']                               AS retry_key,
    TRY_CAST(attributes['inferledger.retry_attempt'] AS INTEGER)      AS retry_attempt,
    TRY_CAST(attributes['inferledger.usage.context_tokens'] AS BIGINT) AS context_tokens,
    TRY_CAST(attributes['inferledger.usage.user_tokens'] AS BIGINT)   AS user_tokens,
    attributes,
    simulated
FROM edges;

-- stg_engine_startups: an engine's model-loading window, until it first served. vLLM's own
-- start-up span ("Overall Loading", a root span of the API server's process) says when
-- loading began; the middleware's (inferledger.engine.startup) when the server was ready,
-- and where: it starts at the process start, which includes Python's imports (no GPU work),
-- so it only stands for the start where vLLM recorded none. vLLM's span alone (no middleware)
-- is placed by its resource's host.name (OTEL_RESOURCE_ATTRIBUTES) and process id.
CREATE OR REPLACE VIEW stg_engine_startups AS
WITH ours AS (
    SELECT span_key, coalesce(attributes['inferledger.host'], host_name) AS host_name,
           TRY_CAST(attributes['inferledger.pid'] AS BIGINT) AS pid,
           TRY_CAST(attributes['inferledger.gpu_uuids'] AS VARCHAR[]) AS gpu_uuids,
           start_s, end_s, simulated
    FROM stg_spans
    WHERE name = 'inferledger.engine.startup'
),
vllm AS (
    SELECT span_key, host_name, TRY_CAST(resource_attributes['vllm.process_id'] AS BIGINT) AS pid,
           start_s, end_s, simulated
    FROM stg_spans
    WHERE name = 'Overall Loading' AND coalesce(parent_span_id, '') = ''
),
paired AS (
    SELECT o.span_key AS ours_key, v.span_key AS vllm_key, v.start_s
    FROM ours o JOIN vllm v
      ON v.pid = o.pid AND v.start_s BETWEEN o.start_s AND o.end_s
     AND coalesce(v.host_name, o.host_name) = o.host_name
    QUALIFY row_number() OVER (PARTITION BY o.span_key ORDER BY v.start_s DESC) = 1
)
SELECT o.host_name, o.pid, o.gpu_uuids, coalesce(p.start_s, o.start_s) AS start_s, o.end_s,
       CASE WHEN p.vllm_key IS NULL THEN 'process_start' ELSE 'vllm' END AS start_source,
       o.simulated
FROM ours o LEFT JOIN paired p ON p.ours_key = o.span_key
UNION ALL
SELECT host_name, pid, NULL, start_s, end_s, 'vllm', simulated
FROM vllm
WHERE span_key NOT IN (SELECT vllm_key FROM paired);
