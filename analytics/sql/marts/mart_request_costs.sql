--! publish: request_costs
--! day_key: epoch(started_at)
-- mart_request_costs: what each response cost, with the figures it was computed from.
--   cost_usd      = Σ over its GPUs (attributed GPU-seconds × GPU price per hour / 3600)
--                   + attributed joules / 3.6e6 × PUE × price per kWh
--   idle_share_usd = its part of idle GPU cost under the pricing file's idle policy: within
--                   the day, idle cost of the scope (node / the model's GPUs / everything
--                   for tenant) is spread over the scope's responses by their cost_usd;
--                   0 with the 'separate' policy
--   total_cost_usd = cost_usd + idle_share_usd
--   api_cost_usd  = the same tokens at the API list price set for the model (if any)
--   answer_id, answer_attempt, retried, context_tokens: its answer (int_answers)
--   prompt_cost_usd, context_cost_usd: the part of cost_usd its prompt's processing took,
--                   and the part its added context caused
--   kv_gb_s       = KV-cache GB held × seconds (model's KV bytes per token, settings)
-- Unplaced requests keep NULL costs (visible, not guessed); a request that never reached
-- an engine (turned away at the edge: 4xx, rejected) is placed nowhere at zero cost;
-- placed requests that fell between samples have zero attributed time until the next
-- sample arrives.
CREATE OR REPLACE TEMP TABLE mart_request_costs AS
WITH priced AS (
    SELECT a.request_uid, a.gpu_uuid, a.host_name, date_trunc('day', a.hour) AS day,
        a.gpu_seconds, a.energy_j,
        a.gpu_seconds * p.usd_per_gpu_hour / 3600.0                    AS gpu_cost_usd,
        a.energy_j / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh') AS energy_cost_usd,
        coalesce(a.prompt_seconds * p.usd_per_gpu_hour / 3600.0, 0)
            + a.prompt_j / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh') AS prompt_usd,
        coalesce(a.context_read_seconds * p.usd_per_gpu_hour / 3600.0, 0)
            + a.context_read_j / 3.6e6 * getvariable('pue') * getvariable('usd_per_kwh')
                                                                       AS context_read_usd
    FROM int_attribution a
    LEFT JOIN pricing_gpu p USING (gpu_model)
),
per_request AS (
    SELECT request_uid, sum(gpu_seconds) AS gpu_seconds, sum(energy_j) AS energy_j,
        sum(gpu_cost_usd) AS gpu_cost_usd, sum(energy_cost_usd) AS energy_cost_usd,
        sum(prompt_usd) AS prompt_usd, sum(context_read_usd) AS context_read_usd
    FROM priced GROUP BY request_uid
),
-- Idle sharing. cost per request, GPU and day, and each request's scope key.
request_day AS (  -- empty under the 'separate' policy: nothing to share
    SELECT p.request_uid, p.gpu_uuid, p.host_name, p.day, r.model,
        coalesce(p.gpu_cost_usd, 0) + p.energy_cost_usd AS cost
    FROM priced p JOIN int_requests r USING (request_uid)
    WHERE getvariable('idle_policy') <> 'separate'
),
idle_day AS (
    SELECT gpu_uuid, host_name, date_trunc('day', hour) AS day, sum(idle_cost_usd) AS idle
    FROM mart_gpu_time GROUP BY ALL
),
gpu_day_cost AS (SELECT gpu_uuid, day, sum(cost) AS cost FROM request_day GROUP BY ALL),
pools AS (  -- idle cost per (scope, day)
    SELECT 'node' AS policy, i.host_name AS scope, i.day, sum(i.idle) AS pool
    FROM idle_day i GROUP BY ALL
    UNION ALL
    SELECT 'model', rd.model, rd.day, sum(i.idle * rd.cost / nullif(g.cost, 0))
    FROM (SELECT gpu_uuid, day, model, sum(cost) AS cost FROM request_day GROUP BY ALL) rd
    JOIN gpu_day_cost g USING (gpu_uuid, day)
    JOIN idle_day i USING (gpu_uuid, day)
    GROUP BY ALL
    UNION ALL
    SELECT 'tenant', '*', day, sum(idle) FROM idle_day GROUP BY ALL
),
scoped AS (
    SELECT request_uid, day, cost, scope,
        sum(cost) OVER (PARTITION BY scope, day) AS scope_cost
    FROM (SELECT *, CASE getvariable('idle_policy') WHEN 'node' THEN host_name
                         WHEN 'model' THEN model ELSE '*' END AS scope
          FROM request_day)
),
idle_share AS (
    SELECT s.request_uid, sum(pl.pool * s.cost / nullif(s.scope_cost, 0)) AS idle_share_usd
    FROM scoped s
    JOIN pools pl ON pl.policy = getvariable('idle_policy') AND pl.scope = s.scope
                 AND pl.day = s.day
    GROUP BY s.request_uid
),
placement AS (
    SELECT request_uid, list(gpu_uuid ORDER BY gpu_uuid) AS gpu_uuids,
           any_value(placement_source) AS placement_source
    FROM int_request_gpus
    GROUP BY request_uid
)
SELECT
    r.request_uid, r.trace_id, r.request_id, r.seen_by, r.simulated,
    r.tenant, r.model, r.route, r.host_name, r.outcome, r.work_class, r.stream, r.http_status,
    to_timestamp(r.started_s)                                      AS started_at,
    date_trunc('hour', to_timestamp(r.started_s))                  AS hour,
    r.input_tokens, r.output_tokens, r.cached_tokens, r.choices,
    r.ttft_s, r.tpot_s, r.e2e_s, r.queue_s, r.prefill_s, r.decode_s, r.edge_overhead_s,
    r.other_spans_s,
    slo.slo_met,
    r.reached_engine,
    coalesce(pl.gpu_uuids, CASE WHEN NOT r.reached_engine THEN []::VARCHAR[] END) AS gpu_uuids,
    coalesce(pl.placement_source, CASE WHEN NOT r.reached_engine THEN 'not_served' END)
                                                                   AS placement_source,
    pl.request_uid IS NOT NULL OR NOT r.reached_engine             AS placed,
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine THEN coalesce(pr.gpu_seconds, 0) END AS gpu_seconds,
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine THEN coalesce(pr.energy_j, 0) END    AS energy_j,
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine THEN coalesce(pr.gpu_cost_usd, 0) END AS gpu_cost_usd,
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine THEN coalesce(pr.energy_cost_usd, 0) END
                                                                   AS energy_cost_usd,
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine
         THEN coalesce(pr.gpu_cost_usd, 0) + coalesce(pr.energy_cost_usd, 0) END AS cost_usd,
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine THEN coalesce(i.idle_share_usd, 0) END AS idle_share_usd,
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine
         THEN coalesce(pr.gpu_cost_usd, 0) + coalesce(pr.energy_cost_usd, 0)
              + coalesce(i.idle_share_usd, 0) END                  AS total_cost_usd,
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine THEN coalesce(pr.energy_j, 0) / 3.6e6
         * getvariable('pue') * getvariable('gco2e_per_kwh') END  AS carbon_g,
    r.input_tokens / 1e6 * api.usd_per_1m_input
        + r.output_tokens / 1e6 * api.usd_per_1m_output           AS api_cost_usd,
    ans.answer_id,
    ans.attempt                                                    AS answer_attempt,
    ans.superseded                                                 AS retried,
    ans.context_tokens,
    -- The prompt's cost: its prefill's take (under time_overlap, which does not tell the
    -- phases apart, the prefill's share of the request's time).
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine THEN
        CASE WHEN getvariable('attribution_method') = 'time_overlap'
             THEN (coalesce(pr.gpu_cost_usd, 0) + coalesce(pr.energy_cost_usd, 0))
                  * coalesce((r.first_token_s - r.scheduled_s)
                             / nullif(r.finished_s - r.scheduled_s, 0), 0)
             ELSE coalesce(pr.prompt_usd, 0) END END              AS prompt_cost_usd,
    -- What the added context cost: its part of the prompt's processing, and its part of
    -- the decodes' KV reads (context tokens over the mean context of the reply).
    CASE WHEN pl.request_uid IS NOT NULL OR NOT r.reached_engine THEN
        coalesce(ans.context_tokens / nullif(r.input_tokens, 0), 0) * CASE
            WHEN getvariable('attribution_method') = 'time_overlap'
            THEN (coalesce(pr.gpu_cost_usd, 0) + coalesce(pr.energy_cost_usd, 0))
                 * coalesce((r.first_token_s - r.scheduled_s)
                            / nullif(r.finished_s - r.scheduled_s, 0), 0)
            ELSE coalesce(pr.prompt_usd, 0) END
        + coalesce(pr.context_read_usd, 0) * coalesce(ans.context_tokens
            / nullif(r.input_tokens + coalesce(r.output_tokens, 0) / 2, 0), 0) END
                                                                   AS context_cost_usd,
    -- KV-cache memory held: the new prompt (prefix-cache hits are shared blocks, credited)
    -- growing over the prefill, then with half the reply on average over the decode.
    ms.kv_bytes_per_token / 1e9 * (
        greatest(coalesce(r.input_tokens, 0) - coalesce(r.cached_tokens, 0), 0) / 2.0
            * greatest(coalesce(r.first_token_s - r.scheduled_s, 0), 0)
        + (greatest(coalesce(r.input_tokens, 0) - coalesce(r.cached_tokens, 0), 0)
           + coalesce(r.output_tokens, 0) / 2.0)
            * greatest(coalesce(r.finished_s - r.first_token_s, 0), 0)) AS kv_gb_s,
    getvariable('pricing_version')                                 AS pricing_version,
    getvariable('idle_policy')                                     AS idle_policy,
    getvariable('attribution_method')                              AS attribution_method
FROM int_requests r
LEFT JOIN per_request pr USING (request_uid)
LEFT JOIN placement pl USING (request_uid)
LEFT JOIN idle_share i USING (request_uid)
LEFT JOIN pricing_api api USING (model)
LEFT JOIN int_request_slo slo USING (request_uid)
LEFT JOIN int_answers ans USING (request_uid)
LEFT JOIN int_model_shapes ms USING (model);
