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
    -- what ties it to the answer it served (int_answers): the caller's span, a retry key
    -- (a hash of the Idempotency-Key header), the prompt's added context, every attribute
    parent_span_id                                                    AS caller_span_id,
    attributes['inferledger.retry_key']                               AS retry_key,
    TRY_CAST(attributes['inferledger.retry_attempt'] AS INTEGER)      AS retry_attempt,
    TRY_CAST(attributes['inferledger.usage.context_tokens'] AS BIGINT) AS context_tokens,
    TRY_CAST(attributes['inferledger.usage.user_tokens'] AS BIGINT)   AS user_tokens,
    attributes,
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
