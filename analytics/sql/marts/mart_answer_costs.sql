--! publish: answer_costs
--! day_key: epoch(started_at)
-- mart_answer_costs: what each answer cost (int_answers says which requests served it), and
-- how long it took. Published as `answer_costs`; one row per answer, in the hour it started.
--   outcome        completed: the last attempt at each piece of its work succeeded;
--                  failed: some piece never did (the whole cost is a failed answer's)
--   cost_usd, gpu_seconds, energy_j, carbon_g, idle_share_usd, total_cost_usd, api_cost_usd:
--                  the sums of its requests' (request_costs), retries included, so
--                  Σ answers' cost_usd = Σ requests' cost_usd
--   retry_cost_usd the part of cost_usd spent on superseded attempts (failed, then retried)
--   context_cost_usd the part of cost_usd its prompts' added context caused
--   started_at     its first span (an app's root span, else its first request); ended_at
--                  its last span's end; e2e_s the time between; ttft_s from its start to the
--                  first token of its last successful generation (what the user waited for)
--   other_spans_s  time in its traces' other spans (retrieval, tools, HTTP): latency, no GPU
--   model, host_name: its last request's (tenant and route: its requests' most common)
CREATE OR REPLACE TEMP TABLE mart_answer_costs AS
WITH members AS (
    SELECT a.answer_id, a.answer_key, a.trace_id, a.superseded, a.final_attempt,
           r.started_s, r.first_token_s, r.finished_s, r.work_class, r.operation, r.tenant,
           r.route, r.model, r.host_name, r.simulated, r.output_tokens, r.input_tokens, a.context_tokens,
           r.other_spans_s,
           c.placed, c.gpu_seconds, c.energy_j, c.cost_usd, c.idle_share_usd, c.total_cost_usd,
           c.carbon_g, c.api_cost_usd, c.context_cost_usd, c.kv_gb_s, c.slo_met
    FROM int_answers a
    JOIN int_requests r USING (request_uid)
    JOIN mart_request_costs c USING (request_uid)
),
traces AS (  -- each trace of an answer keyed by its trace: its spans' extent and tool time
    SELECT m.answer_id, m.trace_id, any_value(m.other_spans_s) AS other_spans_s,
           min(t.start_s) AS start_s, max(t.end_s) AS end_s
    FROM (SELECT DISTINCT answer_id, trace_id, other_spans_s FROM members
          WHERE answer_key = 'trace') m
    LEFT JOIN int_trace_spans t USING (trace_id)
    GROUP BY ALL
),
per_answer AS (
    SELECT
        answer_id,
        any_value(answer_key)                                         AS answer_key,
        min(started_s)                                                AS first_request_s,
        max(finished_s)                                               AS last_request_s,
        mode(tenant)                                                  AS tenant,
        mode(route)                                                   AS route,
        arg_max(model, started_s) FILTER (WHERE model IS NOT NULL)    AS model,
        arg_max(host_name, started_s) FILTER (WHERE host_name IS NOT NULL) AS host_name,
        count(DISTINCT model)                                         AS models,
        count(DISTINCT trace_id)                                      AS traces,
        CASE WHEN bool_and(NOT final_attempt OR work_class = 'useful') THEN 'completed'
             ELSE 'failed' END                                        AS outcome,
        count(*)                                                      AS requests,
        count_if(superseded)                                          AS retries,
        count_if(work_class <> 'useful')                              AS unsuccessful_requests,
        count_if(NOT placed)                                          AS unplaced_requests,
        count_if(coalesce(operation, '') = 'embeddings')              AS embedding_requests,
        sum(input_tokens)                                             AS input_tokens,
        sum(output_tokens)                                            AS output_tokens,
        sum(context_tokens)                                           AS context_tokens,
        sum(gpu_seconds)                                              AS gpu_seconds,
        sum(energy_j)                                                 AS energy_j,
        sum(cost_usd)                                                 AS cost_usd,
        coalesce(sum(cost_usd) FILTER (WHERE superseded), 0)          AS retry_cost_usd,
        sum(context_cost_usd)                                         AS context_cost_usd,
        sum(idle_share_usd)                                           AS idle_share_usd,
        sum(total_cost_usd)                                           AS total_cost_usd,
        sum(carbon_g)                                                 AS carbon_g,
        sum(api_cost_usd)                                             AS api_cost_usd,
        sum(kv_gb_s)                                                  AS kv_gb_s,
        -- the last successful generation's first token: what the user waited for
        arg_max(first_token_s, started_s) FILTER (
            WHERE work_class = 'useful' AND coalesce(operation, '') <> 'embeddings')
                                                                      AS answer_token_s,
        bool_and(slo_met) FILTER (WHERE final_attempt)                AS slo_met,
        bool_or(simulated)                                            AS simulated
    FROM members GROUP BY answer_id
),
timeline AS (
    SELECT answer_id, min(start_s) AS start_s, max(end_s) AS end_s,
           sum(other_spans_s) AS other_spans_s
    FROM traces GROUP BY answer_id
)
SELECT
    p.answer_id,
    p.answer_key,
    to_timestamp(least(p.first_request_s, t.start_s))                 AS started_at,
    date_trunc('hour', to_timestamp(least(p.first_request_s, t.start_s))) AS hour,
    to_timestamp(greatest(p.last_request_s, t.end_s))                 AS ended_at,
    p.tenant, p.model, p.route, p.host_name, p.models, p.traces, p.outcome,
    p.requests, p.retries, p.unsuccessful_requests, p.unplaced_requests, p.embedding_requests,
    p.input_tokens, p.output_tokens, p.context_tokens,
    p.gpu_seconds, p.energy_j, p.cost_usd, p.retry_cost_usd, p.context_cost_usd,
    p.idle_share_usd, p.total_cost_usd, p.carbon_g, p.api_cost_usd, p.kv_gb_s,
    p.answer_token_s - least(p.first_request_s, t.start_s)            AS ttft_s,
    greatest(p.last_request_s, t.end_s) - least(p.first_request_s, t.start_s) AS e2e_s,
    coalesce(t.other_spans_s, 0)                                      AS other_spans_s,
    p.slo_met,
    p.simulated,
    getvariable('pricing_version')                                    AS pricing_version,
    getvariable('idle_policy')                                        AS idle_policy
FROM per_answer p
LEFT JOIN timeline t USING (answer_id);
