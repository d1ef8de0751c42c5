--! publish: requests
--! day_key: started_s
-- int_requests: one row per inference request, edge span joined to vLLM's span.
-- Join: the engine span whose parent is the edge span (W3C traceparent), else the same
-- request id. Requests seen by one side only are kept and flagged in `seen_by`. An edge
-- span whose child is another edge span (a gateway or GenAI proxy in front of engines that
-- run the middleware) is the same request: the span closest to the engine stands.
-- A request with n > 1 choices is one response: its choices' engine spans become one row.
--
-- Clocks: vLLM's queue/prefill/decode/inference come from the engine's monotonic clock and
-- cannot be placed on the wall clock directly. We anchor them at the span's wall-clock end
-- (arrival + e2e, both frontend wall clock): finished = arrival + e2e,
-- scheduled = finished - inference, first token = scheduled + prefill.
CREATE OR REPLACE TEMP TABLE int_requests AS
WITH edge AS (
    SELECT * FROM stg_edge_spans g
    WHERE NOT EXISTS (
        SELECT 1 FROM stg_edge_spans m
        WHERE m.trace_id = g.trace_id AND m.parent_span_id = g.span_id)
),
choices AS (
    -- Each choice's phases on the wall clock (see Clocks above).
    SELECT *, arrival_s + e2e_s AS end_s, arrival_s + e2e_s - inference_s AS sched_s,
           arrival_s + e2e_s - inference_s + prefill_s AS first_s
    FROM stg_engine_spans
),
eng AS (
    -- One row per response: vLLM emits one llm_request span per choice (n > 1), each with
    -- the request's id, under the same parent. The response starts with its first choice
    -- and ends with its last; its prompt is one prompt, its output every choice's tokens.
    SELECT
        trace_id, parent_span_id, request_id, request_key, host_name, pid,
        min(span_key)                                          AS span_key,
        count(*)                                               AS choices,
        min(arrival_s)                                         AS arrival_s,
        min(queue_s)                                           AS queue_s,
        min(ttft_s)                                            AS ttft_s,
        min(first_s) - min(sched_s)                            AS prefill_s,
        max(end_s) - min(first_s)                              AS decode_s,
        max(end_s) - min(sched_s)                              AS inference_s,
        max(end_s) - min(arrival_s)                            AS e2e_s,
        max(prompt_tokens)                                     AS prompt_tokens,
        sum(completion_tokens)                                 AS completion_tokens,
        max(cached_tokens)                                     AS cached_tokens,
        string_agg(DISTINCT finish_reasons, ',')               AS finish_reasons,
        bool_or(simulated)                                     AS simulated
    FROM choices
    -- A span without a request id is its own response.
    GROUP BY trace_id, parent_span_id, request_id, request_key, host_name, pid,
             CASE WHEN request_id IS NULL THEN span_key END
),
by_parent AS (
    SELECT e.span_key AS edge_key, g.span_key AS engine_key
    FROM edge e JOIN eng g ON g.trace_id = e.trace_id AND g.parent_span_id = e.span_id
),
by_request_id AS (
    SELECT e.span_key AS edge_key, g.span_key AS engine_key
    FROM edge e JOIN eng g ON g.request_key = e.request_key
    WHERE e.span_key NOT IN (SELECT edge_key FROM by_parent)
      AND g.span_key NOT IN (SELECT engine_key FROM by_parent)
    QUALIFY row_number() OVER (PARTITION BY e.span_key ORDER BY g.arrival_s) = 1
),
pairs AS (
    SELECT * FROM by_parent UNION ALL SELECT * FROM by_request_id
),
matched AS (
    SELECT p.edge_key, p.engine_key FROM pairs p
    UNION ALL
    SELECT e.span_key, NULL FROM edge e WHERE e.span_key NOT IN (SELECT edge_key FROM pairs)
    UNION ALL
    SELECT NULL, g.span_key FROM eng g WHERE g.span_key NOT IN (SELECT engine_key FROM pairs)
),
joined AS (
    SELECT
        coalesce(m.edge_key, m.engine_key)                     AS request_uid,
        coalesce(e.trace_id, g.trace_id)                       AS trace_id,
        coalesce(g.request_id, e.request_key)                  AS request_id,
        CASE WHEN e.span_key IS NOT NULL AND g.span_key IS NOT NULL THEN 'both'
             WHEN e.span_key IS NOT NULL THEN 'edge_only' ELSE 'engine_only' END AS seen_by,
        coalesce(e.tenant, gw.tenant)                          AS tenant,
        coalesce(e.route, gw.route)                            AS route,
        coalesce(e.model, gw.model)                            AS model,
        e.stream,
        e.http_status,
        coalesce(e.outcome,
                 CASE WHEN g.finish_reasons LIKE '%abort%' THEN 'client_abort' ELSE 'ok' END) AS outcome,
        coalesce(e.finish_reasons, g.finish_reasons)           AS finish_reasons,
        coalesce(e.input_tokens, g.prompt_tokens)              AS input_tokens,
        coalesce(e.output_tokens, g.completion_tokens)         AS output_tokens,
        coalesce(e.cached_tokens, g.cached_tokens, 0)          AS cached_tokens,
        coalesce(e.usage_estimated, false)                     AS usage_estimated,
        coalesce(e.host_name, g.host_name)                     AS host_name,
        coalesce(e.pid, g.pid)                                 AS pid,
        e.gpu_uuids                                            AS tagged_gpu_uuids,
        e.upstream,
        e.operation,
        -- the caller's span: under a gateway or proxy that was dropped for its child
        -- (see edge), that one's own caller
        nullif(coalesce(gw.caller_span_id, e.caller_span_id), '') AS caller_span_id,
        e.retry_key,
        e.retry_attempt,
        e.context_tokens                                       AS context_tokens_said,
        e.user_tokens                                          AS user_tokens_said,
        -- the answer keys (settings [answers] keys) as the request's own span sets them
        list_transform(getvariable('answer_keys'), lambda k: e.attributes[k]) AS answer_key_values,
        coalesce(g.choices, 1)                                 AS choices,
        coalesce(e.simulated, false) OR coalesce(g.simulated, false) AS simulated,
        e.start_s                                              AS edge_start_s,
        e.end_s                                                AS edge_end_s,
        e.e2e_s                                                AS edge_e2e_s,
        e.ttft_s                                               AS edge_ttft_s,
        g.arrival_s                                            AS engine_arrival_s,
        g.arrival_s + g.e2e_s                                  AS engine_end_s,
        g.queue_s,
        g.prefill_s,
        g.decode_s,
        g.inference_s,
        g.ttft_s                                               AS engine_ttft_s,
        g.e2e_s                                                AS engine_e2e_s
    FROM matched m
    LEFT JOIN edge e ON e.span_key = m.edge_key
    LEFT JOIN eng g ON g.span_key = m.engine_key
    LEFT JOIN stg_edge_spans gw ON gw.edge_source <> 'middleware'
         AND gw.trace_id = e.trace_id AND gw.span_id = e.caller_span_id
),
other_spans AS (
    -- Time in other spans of the same trace (retrieval, embeddings, tools): the rest of a
    -- response's path. The span that called the inference (an app's root span) contains
    -- it and is not counted; other root spans are.
    SELECT s.trace_id, sum(s.duration_s) AS other_spans_s
    FROM stg_spans s
    WHERE s.trace_id IN (SELECT trace_id FROM joined)
      AND s.span_key NOT IN (SELECT span_key FROM stg_edge_spans)
      AND s.span_key NOT IN (SELECT span_key FROM stg_engine_spans)
      AND NOT EXISTS (SELECT 1 FROM stg_edge_spans e
                      WHERE e.trace_id = s.trace_id AND e.parent_span_id = s.span_id)
    GROUP BY s.trace_id
),
assembled AS (
    SELECT
        j.*,
        coalesce(j.edge_start_s, j.engine_arrival_s)                          AS started_s,
        coalesce(j.engine_end_s, j.edge_end_s)                                AS finished_s,
        coalesce(j.engine_end_s - j.inference_s, j.edge_start_s)              AS scheduled_s,
        coalesce(j.engine_end_s - j.inference_s + j.prefill_s,
                 j.edge_start_s + j.edge_ttft_s, j.edge_end_s)                AS first_token_s,
        coalesce(j.edge_ttft_s, j.engine_ttft_s)                              AS ttft_s,
        coalesce(j.edge_e2e_s, j.engine_e2e_s)                                AS e2e_s,
        greatest(j.edge_e2e_s - j.engine_e2e_s, 0)                            AS edge_overhead_s,
        coalesce(o.other_spans_s, 0)                                          AS other_spans_s,
        -- Evidence that an engine worked on it: its engine span, or, seen by the edge only,
        -- an answer that was not turned away (a 4xx such as an unknown model, or a 429/503
        -- rejection, never reached an engine) and that succeeded or produced a token. A
        -- request that timed out or was hung up on before its first token waited in the
        -- queue as far as anyone can tell: it holds no GPU time.
        j.seen_by <> 'edge_only'
            OR (NOT (j.outcome = 'rejected' OR coalesce(j.http_status BETWEEN 400 AND 499, false))
                AND (j.outcome = 'ok' OR coalesce(j.output_tokens, 0) > 0
                     OR j.edge_ttft_s IS NOT NULL))                           AS reached_engine,
        CASE j.outcome WHEN 'ok' THEN 'useful'
                       WHEN 'client_abort' THEN 'aborted'
                       WHEN 'timeout' THEN 'timed_out'
                       ELSE 'failed' END                                      AS work_class
    FROM joined j
    LEFT JOIN other_spans o USING (trace_id)
)
-- TPOT as vllm bench serve defines it: (e2e − TTFT) / (output tokens − 1), 0 for one token.
SELECT *,
    CASE WHEN output_tokens > 1 THEN greatest(e2e_s - ttft_s, 0) / (output_tokens - 1)
         WHEN output_tokens >= 0 THEN 0.0 END                                 AS tpot_s
FROM assembled;
