--! publish: answers
--! day_key: started_s
-- int_answers: the answer each request served, its place among the attempts at the same
-- work, and how much of its prompt was added context. Published as `answers`.
--
-- An answer is a group of requests with one purpose. The settings' [answers] keys are tried
-- in order (default: `inferledger.answer_id`, then `trace`): a key set on the request's own
-- span, else on another span of its trace (an app's root span, an agent run), names its
-- answer; `trace` means the request's trace. A request with none is an answer of one.
--
-- Retries: requests with the same retry key (the middleware's hash of an Idempotency-Key
-- header) are attempts at the same work, and all belong to the answer of the last attempt,
-- whatever their traces. Otherwise the attempts at one piece of work are the requests of the
-- answer with the same caller span, operation, model and route. An attempt that did not
-- succeed and was followed by another is *superseded*: its cost is the answer's retry cost.
--
-- Context: the prompt tokens that were not the user's own. Said by the request itself
-- (`inferledger.usage.context_tokens`, or `inferledger.usage.user_tokens` for the user's
-- part), else by the spans before it under the same caller that carry
-- `inferledger.context_tokens` (a RAG app's retrieval, an agent's tool call: what they
-- added to the next request's prompt); a retry carries the context of the attempt it
-- repeats.
-- The spans of the requests' traces other than the requests' own (apps, agent runs,
-- retrieval, tools): where answer keys and context are said, and an answer's timeline.
CREATE OR REPLACE TEMP TABLE int_trace_spans AS
SELECT s.trace_id, s.span_id, nullif(s.parent_span_id, '') AS parent_span_id, s.name, s.kind,
       s.start_s, s.end_s, s.attributes
FROM stg_spans s
WHERE s.trace_id IN (SELECT trace_id FROM int_requests)
  AND s.span_key NOT IN (SELECT request_uid FROM int_requests)
  AND s.span_key NOT IN (SELECT span_key FROM stg_engine_spans);

CREATE OR REPLACE TEMP TABLE int_answers AS
WITH keys AS (
    SELECT unnest(getvariable('answer_keys')) AS key,
           unnest(range(1, len(getvariable('answer_keys')) + 1)) AS pos
),
trace_spans AS (SELECT * FROM int_trace_spans),
trace_values AS (  -- a key set on another span of the trace: the earliest one's value
    SELECT t.trace_id, k.pos, arg_min(t.attributes[k.key], t.start_s) AS value
    FROM trace_spans t JOIN keys k ON t.attributes[k.key] IS NOT NULL
    GROUP BY ALL
),
candidates AS (
    SELECT r.request_uid, k.pos, k.key,
           CASE WHEN k.key = 'trace' THEN r.trace_id
                ELSE coalesce(r.answer_key_values[k.pos], t.value) END AS value
    FROM int_requests r CROSS JOIN keys k
    LEFT JOIN trace_values t ON t.trace_id = r.trace_id AND t.pos = k.pos
),
own AS (
    SELECT request_uid, arg_min(key, pos) AS answer_key,
           arg_min(key || ':' || value, pos) AS answer_id
    FROM candidates WHERE value IS NOT NULL GROUP BY request_uid
),
based AS (
    SELECT r.request_uid, r.trace_id, r.started_s, r.retry_key, r.retry_attempt,
           r.caller_span_id, r.operation, r.model, r.route, r.work_class, r.input_tokens,
           r.context_tokens_said, r.user_tokens_said,
           coalesce(o.answer_key, 'request')                          AS base_key,
           coalesce(o.answer_id, 'request:' || r.request_uid)         AS base_answer
    FROM int_requests r LEFT JOIN own o USING (request_uid)
),
grouped AS (  -- attempts with one retry key join the answer of the last of them
    SELECT *,
        CASE WHEN retry_key IS NULL THEN base_answer ELSE last_value(base_answer) OVER (
            PARTITION BY retry_key ORDER BY started_s, request_uid
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) END AS answer_id,
        CASE WHEN retry_key IS NULL THEN base_key ELSE last_value(base_key) OVER (
            PARTITION BY retry_key ORDER BY started_s, request_uid
            ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) END AS answer_key
    FROM based
),
chained AS (
    SELECT *,
        coalesce('retry:' || retry_key,
                 concat_ws('|', answer_id, coalesce(caller_span_id, ''),
                           coalesce(operation, ''), coalesce(model, ''), coalesce(route, '')))
                                                                      AS work_key
    FROM grouped
),
attempts AS (
    SELECT *,
        row_number() OVER w                                           AS attempt,
        count(*) OVER (PARTITION BY work_key)                         AS attempts
    FROM chained
    WINDOW w AS (PARTITION BY work_key ORDER BY started_s, request_uid)
),
context_spans AS (
    SELECT trace_id, coalesce(parent_span_id, '') AS caller, end_s,
           TRY_CAST(attributes['inferledger.context_tokens'] AS BIGINT) AS tokens
    FROM trace_spans WHERE attributes['inferledger.context_tokens'] IS NOT NULL
),
span_context AS (  -- each context span's tokens go to the next request under its caller
    SELECT a.request_uid, sum(c.tokens) AS tokens
    FROM context_spans c
    ASOF JOIN (SELECT request_uid, trace_id, coalesce(caller_span_id, '') AS caller, started_s
               FROM attempts) a
      ON c.trace_id = a.trace_id AND c.caller = a.caller AND c.end_s <= a.started_s
    GROUP BY a.request_uid
),
with_context AS (
    SELECT t.*,
        coalesce(t.context_tokens_said, t.input_tokens - t.user_tokens_said, sc.tokens)
                                                                      AS context_said
    FROM attempts t LEFT JOIN span_context sc USING (request_uid)
)
SELECT
    request_uid,
    answer_id,
    answer_key,
    trace_id,
    started_s,
    work_key,
    attempt,
    attempts,
    -- did not succeed, and the same work was tried again after it
    work_class <> 'useful' AND attempt < attempts                     AS superseded,
    attempt = attempts                                                AS final_attempt,
    retry_attempt,
    -- NULL: nothing said how much of the prompt was context
    CASE WHEN context IS NOT NULL
         THEN least(greatest(context, 0), input_tokens) END           AS context_tokens
FROM (
    SELECT *, coalesce(context_said, CASE WHEN lag(work_class) OVER w <> 'useful'
               THEN last_value(context_said IGNORE NULLS) OVER (
                   w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) END) AS context
    FROM with_context
    WINDOW w AS (PARTITION BY work_key ORDER BY started_s, request_uid)
);
